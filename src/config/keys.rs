//! Every key of the config file, written once: its name, its default as TOML text and
//! a one-line meaning.
//!
//! These tables are the single source the rest of the module reads: the checker takes
//! its accepted-key lists (and "did you mean" candidates) from them, [`Config::default`]
//! is what the checker builds from the default texts alone, and the unit tests pin the
//! README's configuration table and the shipped `config/hookd.toml` against them. A new
//! key is added here, in its section's builder in `check.rs` and in the struct.
//!
//! [`Config::default`]: super::Config

/// One key of a config table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key as written in the file.
    pub name: &'static str,
    /// The default, written as TOML (`"10s"` with its quotes, `64`, `[]`); `None` for a
    /// key that must be given.
    pub default: Option<&'static str>,
    /// What it controls, in one line.
    pub meaning: &'static str,
}

/// A table of the config file and the keys it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// `""` for the top level; `tokens` is an array of tables (`[[tokens]]`).
    pub name: &'static str,
    pub keys: &'static [Key],
}

const fn key(name: &'static str, default: &'static str, meaning: &'static str) -> Key {
    Key {
        name,
        default: Some(default),
        meaning,
    }
}

const fn required(name: &'static str, meaning: &'static str) -> Key {
    Key {
        name,
        default: None,
        meaning,
    }
}

pub const LISTEN: Key = key(
    "listen",
    "\"127.0.0.1:8080\"",
    "address of the HTTP API, as IP:PORT",
);
pub const DATA_DIR: Key = key(
    "data_dir",
    "\"/var/lib/hookd\"",
    "directory of hookd.redb, created if missing",
);
pub const LOG_FORMAT: Key = key(
    "log_format",
    "\"text\"",
    "\"text\" or \"json\" log lines on stderr",
);

pub const TIMEOUT: Key = key(
    "timeout",
    "\"10s\"",
    "one attempt: connect, send, response headers",
);
pub const RETRY_SCHEDULE: Key = key(
    "retry_schedule",
    "[\"0s\", \"1m\", \"5m\", \"30m\", \"2h\"]",
    "delay before attempt 1..N; N is the maximum number of attempts",
);
pub const WORKERS: Key = key("workers", "64", "delivery attempts running at once");
pub const MAX_IN_FLIGHT_PER_WEBHOOK: Key = key(
    "max_in_flight_per_webhook",
    "8",
    "attempts running at once for one webhook",
);
pub const ALLOW_HTTP: Key = key("allow_http", "false", "allow http:// webhook URLs");
pub const ALLOW_PRIVATE_NETWORKS: Key = key(
    "allow_private_networks",
    "false",
    "allow loopback, private and link-local destinations",
);
pub const ALLOWED_NETWORKS: Key = key(
    "allowed_networks",
    "[]",
    "CIDR networks allowed although non-public",
);
pub const DISABLE_AFTER: Key = key(
    "disable_after",
    "\"5d\"",
    "a webhook failing this long without a success is disabled",
);
pub const PROXY: Key = key(
    "proxy",
    "\"\"",
    "HTTP proxy for every delivery, as \"http://host:port\"; \"\" for none",
);

pub const MAX_WEBHOOKS_PER_USER: Key =
    key("max_webhooks_per_user", "10", "webhooks one user may have");
pub const EVENTS_PER_MINUTE_PER_WEBHOOK: Key = key(
    "events_per_minute_per_webhook",
    "100",
    "attempts started per webhook in any rolling minute",
);
pub const MAX_PAYLOAD_BYTES: Key = key(
    "max_payload_bytes",
    "262144",
    "largest request body in bytes",
);

pub const EVENTS: Key = key(
    "events",
    "\"30d\"",
    "events and finished deliveries older than this are deleted",
);

pub const MIN_FREE_SPACE: Key = key(
    "min_free_space",
    "\"256MiB\"",
    "below this much free disk space new events are refused (503 store_full)",
);
pub const MAX_UNAVAILABLE: Key = key(
    "max_unavailable",
    "\"5m\"",
    "a store that cannot commit this long stops the systemd watchdog pings",
);

pub const BACKEND: Key = key(
    "backend",
    "\"redb\"",
    "\"redb\" (one file in data_dir) or \"postgres\" (a database several nodes share)",
);
pub const POSTGRES_URL: Key = key(
    "postgres_url",
    "\"\"",
    "the database with backend = \"postgres\"; HOOKD_POSTGRES_URL overrides it",
);
pub const POOL_SIZE: Key = key(
    "pool_size",
    "16",
    "connections to PostgreSQL this node keeps",
);

pub const NODE_ID: Key = key(
    "node_id",
    "\"\"",
    "this node's name in the cluster; \"\" for the host name and a random suffix",
);
pub const LEASE: Key = key(
    "lease",
    "\"10s\"",
    "how long a node that stopped answering keeps its webhooks",
);

pub const NOTIFICATIONS_URL: Key = key(
    "url",
    "\"\"",
    "where operator notifications are POSTed; \"\" sends none",
);
pub const NOTIFICATIONS_SECRET: Key = key(
    "secret",
    "\"\"",
    "signs operator notifications (Standard Webhooks); \"\" leaves them unsigned",
);

pub const USER: Key = required("user", "the user the token acts as");
pub const ROLE: Key = required("role", "what the token may do");
pub const SHA256: Key = required("sha256", "lowercase hex sha256 of the token string");

pub const TOP: Section = Section {
    name: "",
    keys: &[LISTEN, DATA_DIR, LOG_FORMAT],
};
pub const DELIVERY: Section = Section {
    name: "delivery",
    keys: &[
        TIMEOUT,
        RETRY_SCHEDULE,
        WORKERS,
        MAX_IN_FLIGHT_PER_WEBHOOK,
        ALLOW_HTTP,
        ALLOW_PRIVATE_NETWORKS,
        ALLOWED_NETWORKS,
        DISABLE_AFTER,
        PROXY,
    ],
};
pub const LIMITS: Section = Section {
    name: "limits",
    keys: &[
        MAX_WEBHOOKS_PER_USER,
        EVENTS_PER_MINUTE_PER_WEBHOOK,
        MAX_PAYLOAD_BYTES,
    ],
};
pub const RETENTION: Section = Section {
    name: "retention",
    keys: &[EVENTS],
};
pub const STORE: Section = Section {
    name: "store",
    keys: &[
        MIN_FREE_SPACE,
        MAX_UNAVAILABLE,
        BACKEND,
        POSTGRES_URL,
        POOL_SIZE,
    ],
};
pub const CLUSTER: Section = Section {
    name: "cluster",
    keys: &[NODE_ID, LEASE],
};
pub const NOTIFICATIONS: Section = Section {
    name: "notifications",
    keys: &[NOTIFICATIONS_URL, NOTIFICATIONS_SECRET],
};
pub const TOKENS: Section = Section {
    name: "tokens",
    keys: &[USER, ROLE, SHA256],
};

/// Every table of the file, in the order the file and the docs list them.
pub const SECTIONS: &[Section] = &[
    TOP,
    DELIVERY,
    LIMITS,
    RETENTION,
    STORE,
    CLUSTER,
    NOTIFICATIONS,
    TOKENS,
];

impl Section {
    /// The keys accepted in this table; at the top level that includes the sub-tables.
    pub fn accepted(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.keys.iter().map(|k| k.name).collect();
        if self.name.is_empty() {
            names.extend(SECTIONS.iter().map(|s| s.name).filter(|n| !n.is_empty()));
        }
        names
    }
}
