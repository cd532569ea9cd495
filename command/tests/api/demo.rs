//! `cortex demo load` end to end: the generated estate and policies go through the public
//! API of a real app, and loading again replays instead of duplicating.

use cortex_command::demo::{ClientConfig, LoadOptions, load};

use crate::helpers::TestApp;

#[tokio::test]
async fn the_demo_estate_loads_through_the_api_and_a_second_load_appends_nothing() {
    let app = TestApp::spawn().await;
    let config = ClientConfig::new(app.base.clone(), app.api_key.clone().into());
    let mut options = LoadOptions::new(1_200, 12, 7);
    options.batch_size = 500;
    let report = load(&config, &options, &|_| {}).await.expect("the load succeeds");
    assert_eq!(report.item_errors, 0, "{:?}", report.item_error_samples);
    assert_eq!(report.policies_created, 12);
    assert_eq!(report.resources_submitted, 1_200);
    let policies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM es_events WHERE event_type = 'PolicyCreated'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let resources: i64 =
        sqlx::query_scalar("SELECT count(*) FROM es_events WHERE event_type = 'ResourceRegistered'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!((policies, resources), (12, 1_200));

    let before = app.total_events().await;
    let again = load(&config, &options, &|_| {}).await.expect("the second load succeeds");
    assert_eq!(again.item_errors, 0);
    assert_eq!(again.last_position, report.last_position, "replayed answers");
    assert_eq!(app.total_events().await, before);
    app.db.drop_database().await;
}
