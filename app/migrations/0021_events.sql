-- Events (app/events.py; the table `events` is instances' progress lines): a burst of team machines with a start and an end.
-- Each team is an account of its own (role member, the event's tier), made
-- when the event is created; its machines are ordinary instances of that
-- account, so each team sees only its own. spec holds the machines every
-- team gets: [{"name", "profile", "image"}] (JSON).
CREATE TABLE team_events (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    keys TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    build_hours INTEGER NOT NULL,
    grace_hours INTEGER NOT NULL,
    keep TEXT NOT NULL CHECK (keep IN ('backup', 'none')),
    state TEXT NOT NULL DEFAULT 'scheduled'
        CHECK (state IN ('scheduled', 'building', 'ended', 'archiving', 'removing', 'removed')),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE event_teams (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES team_events(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username TEXT NOT NULL,
    invite_hash TEXT,  -- sha256 of the team's link; NULL once used
    UNIQUE (event_id, name)
);
CREATE INDEX event_teams_user ON event_teams (user_id);
