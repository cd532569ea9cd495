//! The conformance suite on the PostgreSQL adapter: every case, each on its own database.
//!
//! `CORTEX_ES_LOG_ORDER=sequence` runs the suite with the visibility guard removed (the
//! naive `ORDER BY seq` reader) to show that the suite catches that classic bug.

mod conformance;

use std::sync::Arc;

use cortex_events::{
    EventStore,
    postgres::{LogOrder, PostgresEventStore, PostgresSettings},
    testing::TestDatabase,
};

fn settings() -> PostgresSettings {
    let order = match std::env::var("CORTEX_ES_LOG_ORDER").as_deref() {
        Ok("sequence") => LogOrder::SequenceOnly,
        _ => LogOrder::Visibility,
    };
    // Small pages and a small checkpoint interval exercise paging and checkpoints.
    PostgresSettings { page_size: 500, checkpoint_interval: 50, order, ..PostgresSettings::default() }
}

async fn run<F, Fut>(case: F)
where
    F: FnOnce(conformance::Harness) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = TestDatabase::create().await;
    let pool = db.pool.clone();
    let factory: conformance::Factory = Arc::new(move |catalog| {
        Arc::new(PostgresEventStore::with_settings(pool.clone(), catalog, settings())) as Arc<dyn EventStore>
    });
    case(conformance::Harness::new(factory)).await;
    db.drop_database().await;
}

macro_rules! postgres_cases {
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run(conformance::$name).await;
            }
        )+
    };
}

for_each_case!(postgres_cases);
