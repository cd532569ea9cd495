//! The client, renewed when its connection task has ended, and the parsing of the
//! connection string it is built from.

use std::sync::{PoisonError, RwLock};

use kurrentdb::{Client, ClientSettings};

use crate::StoreError;

/// The client, renewed when its connection task has ended. The client never restarts that
/// task after a failed (re)connection (e.g. the server was down at the first call, as when
/// PolicyCortex starts before KurrentDB) and then answers every call with
/// `ConnectionClosed`, forever.
pub(super) struct Connection {
    settings: ClientSettings,
    runtime: tokio::runtime::Handle,
    current: RwLock<Lease>,
}

/// One client and its generation, so that the many callers that saw it die renew it once.
#[derive(Clone)]
pub(super) struct Lease {
    generation: u64,
    pub(super) client: Client,
}

impl Connection {
    /// A connection for `connection_string`, run by the current Tokio runtime. Builds the
    /// client, which connects lazily, on the first call.
    pub(super) fn new(connection_string: &str) -> Result<Self, StoreError> {
        let settings = parse_settings(connection_string)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            init_error("find a tokio runtime", format!("the KurrentDB client needs one: {e}"))
        })?;
        let client = Client::with_runtime_handle(runtime.clone(), settings.clone())
            .map_err(|e| init_error("create the client", format!("{e:#}")))?;
        Ok(Self { settings, runtime, current: RwLock::new(Lease { generation: 0, client }) })
    }

    /// The runtime that runs the client's connection task, and the subscriptions.
    pub(super) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub(super) fn lease(&self) -> Lease {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Notes that a call on `lease` failed with `error`; renews the client if the error
    /// says its connection task is gone (the client returns these two only then).
    pub(super) fn failed(&self, lease: &Lease, error: &kurrentdb::Error) {
        if !matches!(error, kurrentdb::Error::ConnectionClosed | kurrentdb::Error::GrpcConnectionError(_)) {
            return;
        }
        // Built under the lock: a client built and then discarded would leak its idle
        // connection task. Building does no network I/O.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.generation != lease.generation {
            return;
        }
        match Client::with_runtime_handle(self.runtime.clone(), self.settings.clone()) {
            Ok(client) => {
                *current = Lease { generation: lease.generation + 1, client };
                tracing::warn!(cause = %error, generation = current.generation, "renewed the KurrentDB client");
            }
            Err(e) => tracing::error!(cause = %error, error = %e, "could not renew the KurrentDB client"),
        }
    }

    pub(super) fn fail(&self, lease: &Lease, step: &'static str, source: kurrentdb::Error) -> StoreError {
        self.failed(lease, &source);
        StoreError::Kurrent { step, source }
    }
}

fn parse_settings(connection_string: &str) -> Result<ClientSettings, StoreError> {
    connection_string.parse::<ClientSettings>().map_err(|e| StoreError::Kurrent {
        step: "parse connection string",
        source: kurrentdb::Error::InitializationError(redact_userinfo(&e.to_string(), connection_string)),
    })
}

fn init_error(step: &'static str, message: String) -> StoreError {
    StoreError::Kurrent { step, source: kurrentdb::Error::InitializationError(message) }
}

/// `message` with every copy of `connection_string` replaced by a copy without its password
/// (the client's parse errors may quote the whole string).
fn redact_userinfo(message: &str, connection_string: &str) -> String {
    let Some((scheme, rest)) = connection_string.split_once("://") else {
        return message.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => message.replace(connection_string, &format!("{scheme}://***@{}", &rest[at + 1..])),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kurrent::{KurrentEventStore, tests::catalog};

    #[test]
    fn kurrentdb_and_esdb_connection_strings_are_accepted() {
        for url in [
            "kurrentdb://admin:changeit@localhost:2113?tls=false",
            "esdb://localhost:2113?tls=false",
            "esdb+discover://cluster.example.com:2113",
            "kurrentdb://host1:2113,host2:2113,host3:2113?nodePreference=leader",
        ] {
            assert!(parse_settings(url).is_ok(), "{url} refused");
        }
    }

    #[test]
    fn a_malformed_connection_string_is_refused_naming_the_step() {
        for url in ["", "not a url", "http://localhost:2113", "kurrentdb://", "esdb://host:notaport"] {
            match parse_settings(url) {
                Err(StoreError::Kurrent { step, source: kurrentdb::Error::InitializationError(_) }) => {
                    assert_eq!(step, "parse connection string");
                }
                other => panic!("{url:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_password_never_reaches_an_error_message() {
        let url = "esdb://admin:s3cret@host:1/x";
        let redacted = redact_userinfo(&format!("bad: {url}"), url);
        assert_eq!(redacted, "bad: esdb://***@host:1/x");
        assert_eq!(redact_userinfo("plain", "esdb://host:1"), "plain");
    }

    #[tokio::test]
    async fn a_dead_client_is_renewed_once_and_other_errors_leave_it_alone() {
        let store = KurrentEventStore::new("kurrentdb://localhost:1?tls=false", Arc::new(catalog())).unwrap();
        let connection = &store.connection;
        let first = connection.lease();
        connection.failed(&first, &kurrentdb::Error::AccessDenied);
        assert_eq!(connection.lease().generation, 0);
        connection.failed(&first, &kurrentdb::Error::ConnectionClosed);
        connection.failed(&first, &kurrentdb::Error::ConnectionClosed);
        assert_eq!(connection.lease().generation, 1);
    }
}
