use crate::helpers::TestApp;

#[tokio::test]
async fn the_openapi_document_describes_every_command_route_with_the_published_schemas() {
    let app = TestApp::spawn().await;
    let doc = app.send(app.client.get(format!("{}/openapi.json", app.base))).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/v1/resources", "post"),
        ("/v1/resources:batch", "post"),
        ("/v1/resources/{resource_id}", "delete"),
        ("/v1/policies", "post"),
        ("/v1/policies/{policy_id}", "put"),
        ("/v1/policies/{policy_id}", "delete"),
        ("/v1/policies/{policy_id}/enable", "post"),
        ("/v1/policies/{policy_id}/disable", "post"),
        ("/v1/policies/{policy_id}/exemptions", "post"),
        ("/v1/policies/{policy_id}/exemptions/{exemption_id}", "delete"),
        ("/v1/evaluations", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is not documented");
    }
    for (name, text) in cortex_command::api::body::COMMAND_SCHEMAS {
        let file: serde_json::Value = serde_json::from_str(text).unwrap();
        let published = &doc.body["components"]["schemas"][name];
        assert_eq!(published["required"], file["required"], "{name}");
        assert_eq!(
            published["properties"].as_object().map(|p| p.len()),
            file["properties"].as_object().map(|p| p.len())
        );
    }
    assert_eq!(
        paths["/v1/resources"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/InventoryRecord"
    );
    app.db.drop_database().await;
}
