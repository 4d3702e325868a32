-- Ids that are never handed out twice, so a name or a history tied to an id
-- can never pass to a newer row (SQLite reuses the highest rowid after a
-- delete): the next id per table, kept in meta.
INSERT INTO meta VALUES ('next_id.instances', (SELECT coalesce(max(id), 0) + 1 FROM instances));
INSERT INTO meta VALUES ('next_id.users', (SELECT coalesce(max(id), 0) + 1 FROM users));
-- Host-unique LXD names, <name>-<row id>-<installation>. A row keeps its old
-- <name>-<member> where no other row maps to the same name (its container
-- keeps running under it); rows that collide get the new name, and the
-- worker's reconcile pass renames their containers.
ALTER TABLE instances ADD COLUMN lxd_name TEXT;
UPDATE instances SET lxd_name = name || '-' || substr(project, 8)
    WHERE (SELECT count(*) FROM instances other
           WHERE other.name || '-' || substr(other.project, 8)
                 = instances.name || '-' || substr(instances.project, 8)) = 1;
UPDATE instances SET lxd_name =
    rtrim(substr(name, 1, 63 - length('-' || id || '-'
                                      || (SELECT value FROM meta WHERE key = 'installation'))), '-')
    || '-' || id || '-' || (SELECT value FROM meta WHERE key = 'installation')
    WHERE lxd_name IS NULL;
CREATE UNIQUE INDEX instances_lxd_name ON instances(lxd_name);
CREATE TRIGGER instances_lxd_name_required BEFORE INSERT ON instances
    WHEN NEW.lxd_name IS NULL
    BEGIN SELECT RAISE(ABORT, 'instances.lxd_name is required'); END;
CREATE TRIGGER instances_lxd_name_fixed BEFORE UPDATE OF lxd_name ON instances
    WHEN NEW.lxd_name IS NULL
    BEGIN SELECT RAISE(ABORT, 'instances.lxd_name is required'); END;
-- History belongs to the account, not to the name: a later account with a
-- deleted member's name sees none of the old member's entries.
ALTER TABLE audit ADD COLUMN member_id INTEGER;
UPDATE audit SET member_id = (SELECT id FROM users WHERE users.username = audit.member);
CREATE INDEX audit_member_id ON audit(member_id, id);
CREATE INDEX audit_at ON audit(at);
-- Fair claiming: jobs are picked per member, and finished ones are pruned by age.
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_instance ON jobs(instance_id, state);
