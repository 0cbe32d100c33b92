-- Hee store schema (SQLite). Applied by the store module to a new file; later
-- changes are numbered migrations in common/store.c, tracked with
-- PRAGMA user_version. Times are milliseconds since the epoch (INTEGER).
-- Every table is written only by the control thread (or the admin CLI through
-- the same store module); edge workers only read.

CREATE TABLE projects (
  id               INTEGER PRIMARY KEY,
  slug             TEXT NOT NULL UNIQUE,
  upstream         TEXT NOT NULL,                -- primary upstream URL
  upstream_fallback TEXT,                        -- used when the primary refuses to connect
  max_domains      INTEGER NOT NULL DEFAULT 50,  -- plan limit on active domains
  settings         TEXT NOT NULL DEFAULT '{}',   -- JSON object (verification methods, headers, …)
  hmac_key         BLOB NOT NULL,                -- signs tenant headers sent upstream
  active_domains   INTEGER NOT NULL DEFAULT 0,   -- maintained by the domains_count_* triggers
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  deleted_at       INTEGER
);

CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,                 -- "tok_…", safe to log
  project_id   INTEGER REFERENCES projects(id),  -- NULL: operator token (apps:admin, every project)
  hash         BLOB NOT NULL UNIQUE,             -- SHA-256 of the secret part; the token itself is never stored
  scopes       TEXT NOT NULL,                    -- space-separated seed scopes
  name         TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at   INTEGER
);
CREATE INDEX tokens_project ON tokens(project_id);

CREATE TABLE domains (
  id              INTEGER PRIMARY KEY,
  hostname        TEXT NOT NULL,                 -- lowercased A-label FQDN, no trailing dot
  project_id      INTEGER NOT NULL REFERENCES projects(id),
  state           TEXT NOT NULL DEFAULT 'created',
  verified        INTEGER NOT NULL DEFAULT 0,    -- one-way: never reset once 1
  verified_at     INTEGER,
  verify_method   TEXT,                          -- cname | a | txt | registration
  challenge       TEXT NOT NULL,                 -- ownership TXT value
  metadata        TEXT NOT NULL DEFAULT '{}',    -- verbatim JSON object bytes
  sequence        INTEGER NOT NULL DEFAULT 0,    -- last event sequence for this domain
  cert_status     TEXT NOT NULL DEFAULT 'none',  -- none | issuing | issued | failed
  cert_error      TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  removed_at      INTEGER,
  next_probe_at   INTEGER,                       -- scheduler: when to probe next (NULL = never)
  last_probe_at   INTEGER,
  drifted_at      INTEGER
);
-- A hostname is active in at most one project; removed rows are history.
CREATE UNIQUE INDEX domains_active_hostname ON domains(hostname) WHERE removed_at IS NULL;
CREATE INDEX domains_hostname ON domains(hostname);
CREATE INDEX domains_project ON domains(project_id, id);
CREATE INDEX domains_next_probe ON domains(next_probe_at) WHERE removed_at IS NULL AND next_probe_at IS NOT NULL;
-- projects.active_domains follows every insert, removal, move and delete, so
-- the plan-limit check is one row read rather than a count over the domains.
CREATE TRIGGER domains_count_insert AFTER INSERT ON domains WHEN NEW.removed_at IS NULL
BEGIN
  UPDATE projects SET active_domains = active_domains + 1 WHERE id = NEW.project_id;
END;
CREATE TRIGGER domains_count_update AFTER UPDATE OF removed_at, project_id ON domains
BEGIN
  UPDATE projects SET active_domains = active_domains - 1 WHERE id = OLD.project_id AND OLD.removed_at IS NULL;
  UPDATE projects SET active_domains = active_domains + 1 WHERE id = NEW.project_id AND NEW.removed_at IS NULL;
END;
CREATE TRIGGER domains_count_delete AFTER DELETE ON domains WHEN OLD.removed_at IS NULL
BEGIN
  UPDATE projects SET active_domains = active_domains - 1 WHERE id = OLD.project_id;
END;

CREATE TABLE certificates (
  id           INTEGER PRIMARY KEY,
  hostname     TEXT NOT NULL,
  chain_pem    TEXT NOT NULL,                    -- leaf first
  key_pem      BLOB NOT NULL,                    -- PEM, or sealed with the configured key (key_sealed = 1)
  key_sealed   INTEGER NOT NULL DEFAULT 0,
  key_type     TEXT NOT NULL,                    -- ecdsa-p256 | rsa-2048
  issuer       TEXT NOT NULL,                    -- "internal" or the ACME directory URL
  issuer_name  TEXT NOT NULL DEFAULT '',         -- issuer CN from the certificate
  serial       TEXT NOT NULL DEFAULT '',
  not_before   INTEGER NOT NULL,
  not_after    INTEGER NOT NULL,
  renew_at     INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  superseded_at INTEGER                          -- set when a renewal replaces it
);
CREATE INDEX certificates_current ON certificates(hostname, not_after) WHERE superseded_at IS NULL;
CREATE INDEX certificates_renew ON certificates(renew_at) WHERE superseded_at IS NULL;

-- Per-hostname issuance bookkeeping: backoff survives restarts.
CREATE TABLE issuance (
  hostname        TEXT PRIMARY KEY,
  failures        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT,
  updated_at      INTEGER NOT NULL
);
-- One row per certificate issued, for the CA's per-registered-domain weekly limit.
CREATE TABLE issuance_log (
  id                INTEGER PRIMARY KEY,
  registered_domain TEXT NOT NULL,
  hostname          TEXT NOT NULL,
  issuer            TEXT NOT NULL,
  issued_at         INTEGER NOT NULL
);
CREATE INDEX issuance_log_regdom ON issuance_log(registered_domain, issued_at);

CREATE TABLE acme_accounts (
  directory_url TEXT PRIMARY KEY,
  key_pem       BLOB NOT NULL,
  kid           TEXT,
  contact       TEXT,
  created_at    INTEGER NOT NULL
);

-- The built-in CA (row id 1) and other single-row secrets.
CREATE TABLE local_ca (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  cert_pem   TEXT NOT NULL,
  key_pem    BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE checks (
  id         INTEGER PRIMARY KEY,
  domain_id  INTEGER NOT NULL REFERENCES domains(id),
  at         INTEGER NOT NULL,
  method     TEXT NOT NULL,                      -- cname | a | txt | all
  outcome    TEXT NOT NULL,                      -- ok | missing | wrong_target | …
  verified   INTEGER NOT NULL,
  summary    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX checks_domain ON checks(domain_id, id);

-- The webhook outbox: written in the same transaction as the change it reports.
CREATE TABLE events (
  id          INTEGER PRIMARY KEY,
  public_id   TEXT NOT NULL UNIQUE,              -- "evt_…"
  project_id  INTEGER NOT NULL REFERENCES projects(id),
  domain_id   INTEGER REFERENCES domains(id),
  type        TEXT NOT NULL,
  sequence    INTEGER NOT NULL DEFAULT 0,        -- per-domain order
  created_at  INTEGER NOT NULL,
  payload     TEXT NOT NULL                      -- the exact JSON body delivered
);
CREATE INDEX events_project ON events(project_id, id);
CREATE INDEX events_created ON events(created_at);

CREATE TABLE webhook_endpoints (
  id                 TEXT PRIMARY KEY,           -- "whe_…"
  project_id         INTEGER NOT NULL REFERENCES projects(id),
  url                TEXT NOT NULL,
  secret             TEXT NOT NULL,
  old_secret         TEXT,
  old_secret_until   INTEGER,
  events             TEXT NOT NULL DEFAULT '[]', -- JSON array of types; [] = all
  description        TEXT NOT NULL DEFAULT '',
  ordered            INTEGER NOT NULL DEFAULT 1, -- per-domain ordering
  disabled           INTEGER NOT NULL DEFAULT 0,
  disabled_reason    TEXT,
  failing_since      INTEGER,
  warned_at          INTEGER,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  deleted_at         INTEGER
);
CREATE INDEX webhook_endpoints_project ON webhook_endpoints(project_id);

CREATE TABLE deliveries (
  id              INTEGER PRIMARY KEY,
  event_id        INTEGER NOT NULL REFERENCES events(id),
  endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id),
  domain_id       INTEGER,                       -- copied from the event for ordering
  status          TEXT NOT NULL DEFAULT 'pending', -- pending | succeeded | dead | cancelled
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_attempt_at INTEGER,
  created_at      INTEGER NOT NULL,
  UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, status, id);

CREATE TABLE attempts (
  id           INTEGER PRIMARY KEY,
  delivery_id  INTEGER NOT NULL REFERENCES deliveries(id),
  at           INTEGER NOT NULL,
  status_code  INTEGER NOT NULL DEFAULT 0,       -- 0 = no HTTP response
  latency_ms   INTEGER NOT NULL DEFAULT 0,
  error        TEXT,
  response     TEXT                              -- first 1 KiB of the body
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, id);

CREATE TABLE audit (
  id         INTEGER PRIMARY KEY,
  project_id INTEGER,
  token_id   TEXT,                               -- "cli" for the admin CLI
  action     TEXT NOT NULL,
  target     TEXT NOT NULL DEFAULT '',
  detail     TEXT NOT NULL DEFAULT '{}',
  at         INTEGER NOT NULL
);
CREATE INDEX audit_project ON audit(project_id, id);

CREATE TABLE usage (
  project_id INTEGER NOT NULL REFERENCES projects(id),
  kind       TEXT NOT NULL,                      -- connect | active_domain | cert | api_call
  period     TEXT NOT NULL,                      -- YYYY-MM
  count      INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, kind, period)
);

-- One row per ACME order started, kept for an hour, so that [acme]
-- max_orders_per_hour holds across restarts (a crash loop cannot reset it).
CREATE TABLE acme_orders (
  started_at INTEGER NOT NULL
);
CREATE INDEX acme_orders_started ON acme_orders(started_at);
