-- share tiers, editable by admins; seeded with a co-op's full and half share
CREATE TABLE tiers (
    name TEXT PRIMARY KEY,
    quota TEXT NOT NULL
);
INSERT INTO tiers VALUES ('full', '{"instances": 4, "cpu": 6, "memory": 6442450944,
    "disk": 42949672960, "processes": 6000, "nesting": true, "cpu_priority": 10}');
INSERT INTO tiers VALUES ('half', '{"instances": 2, "cpu": 3, "memory": 3221225472,
    "disk": 21474836480, "processes": 3000, "nesting": false, "cpu_priority": 5}');
