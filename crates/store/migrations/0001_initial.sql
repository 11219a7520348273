-- Identity: accounts (Huawei "domains"), their IAM users, projects and AK/SK pairs.
CREATE TABLE domains (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    domain_id     TEXT NOT NULL REFERENCES domains(id),
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE projects (
    id        TEXT PRIMARY KEY,
    domain_id TEXT NOT NULL REFERENCES domains(id),
    name      TEXT NOT NULL
);
CREATE TABLE credentials (
    access_key TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id)
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Instances keep their searchable fields as columns and everything else as a JSON document.
CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    engine        TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    document      TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX instances_project_name ON instances (project_id, name);
CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    instance_id   TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    params        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX tasks_instance ON tasks (instance_id);
CREATE TABLE tags (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)
);
