//! In AWS the internal secret is an SSM SecureString read once per cold
//! start, never a plaintext parameter or environment variable. Proven
//! against moto's SSM.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::App;
use system_tests::*;

#[tokio::test]
async fn the_app_reads_its_internal_secret_from_ssm() {
    let name = format!("/checkout-best/test/internal-secret-{}", key_body());
    let secret = format!("ssm-held-internal-secret-{}", key_body());
    aws_sdk_ssm::Client::new(aws().await)
        .put_parameter()
        .name(&name)
        .value(&secret)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let lookup = |var: &str| match var {
        "INTERNAL_SECRET" => None,
        "INTERNAL_SECRET_PARAMETER" => Some(name.clone()),
        other => std::env::var(other).ok(),
    };
    let app = App::from_lookup(lookup).await.unwrap();
    assert_eq!(app.config.internal_secret.expose(), secret.as_bytes());

    // Both at once is ambiguous; a missing parameter stops the cold start
    // with a message that names it.
    let both = |var: &str| match var {
        "INTERNAL_SECRET_PARAMETER" => Some(name.clone()),
        other => std::env::var(other).ok(),
    };
    let err = App::from_lookup(both).await.err().unwrap().to_string();
    assert!(err.contains("INTERNAL_SECRET_PARAMETER"), "{err}");
    let missing = |var: &str| match var {
        "INTERNAL_SECRET" => None,
        "INTERNAL_SECRET_PARAMETER" => Some("/checkout-best/test/none".to_owned()),
        other => std::env::var(other).ok(),
    };
    let err = App::from_lookup(missing).await.err().unwrap().to_string();
    assert!(
        err.contains("/checkout-best/test/none") && !err.contains(&secret),
        "{err}"
    );
}
