//! The storage and sealing guarantees against the real emulators: KMS (moto)
//! enforces the encryption context, and DynamoDB Local's conditional
//! transactions let exactly one of several concurrent saves win.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::domain::{KeyKind, PublishableKey, StoreId};
use shared::store::{AuditEntry, StripeConnection, Table};
use shared::vault::{EncryptionContext, KmsDataKeys, Purpose, Vault, VaultError};
use shared::{AppError, clock};
use std::sync::Arc;
use std::time::Duration;
use system_tests::*;

async fn kms_vault() -> Vault {
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(aws().await), env("KMS_KEY_ID"));
    Vault::new(Arc::new(kms), Duration::from_secs(60))
}

#[tokio::test]
async fn a_secret_sealed_for_one_store_does_not_open_for_another() {
    let a = StoreId::parse(&new_store_id()).unwrap();
    let b = StoreId::parse(&new_store_id()).unwrap();
    let sealed = kms_vault()
        .await
        .seal(
            EncryptionContext::new(a, Purpose::StripeSecretKey),
            "sk_test_sealedsecret123",
        )
        .await
        .unwrap();
    // Fresh vaults: no cached data key, so KMS itself must refuse.
    for ctx in [
        EncryptionContext::new(b, Purpose::StripeSecretKey),
        EncryptionContext::new(a, Purpose::WebhookSecret),
    ] {
        let err = kms_vault().await.open(ctx, &sealed).await.unwrap_err();
        assert!(matches!(err, VaultError::WrongContext), "{err:?}");
    }
    let opened = kms_vault()
        .await
        .open(EncryptionContext::new(a, Purpose::StripeSecretKey), &sealed)
        .await
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened),
        "sk_test_sealedsecret123"
    );
}

#[tokio::test]
async fn of_concurrent_saves_from_one_version_exactly_one_wins() {
    let store = Table::new(dynamodb().await, env("TABLE_NAME"));
    let vault = kms_vault().await;
    let id = StoreId::parse(&new_store_id()).unwrap();
    let connection =
        |n: usize, version: u64, sealed: shared::vault::SealedSecret| StripeConnection {
            store_id: id,
            publishable_key: PublishableKey::parse(&format!("pk_test_concurrent{n:04}")).unwrap(),
            key_kind: KeyKind::Secret,
            account_id: None,
            secret_key: sealed,
            webhook_secret: None,
            connected_at: clock::now(),
            updated_at: clock::now(),
            version,
            activity: Default::default(),
            last_key_replacement: None,
            publishable_key_proven_at: None,
        };
    let audit = || AuditEntry {
        action: "stripe_keys_replaced",
        actor: "test".into(),
        at_millis: clock::now_millis(),
        source_ip: None,
        replacement: None,
    };
    let sealed = vault
        .seal(
            EncryptionContext::new(id, Purpose::StripeSecretKey),
            "sk_test_first0000",
        )
        .await
        .unwrap();
    store
        .save_connection(&connection(0, 1, sealed.clone()), &audit(), None)
        .await
        .unwrap();

    // Ten writers all read version 1 and try to write version 2.
    let writers = (1..=10).map(|n| {
        let store = store.clone();
        let c = connection(n, 2, sealed.clone());
        tokio::spawn(async move { store.save_connection(&c, &audit(), None).await })
    });
    let mut wins = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(()) => wins += 1,
            Err(AppError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent save wins");
    let items = store_items(&id.to_string()).await;
    assert_eq!(
        items
            .iter()
            .filter(|i| i["sk"].as_s().unwrap().starts_with("AUDIT#"))
            .count(),
        2
    );
    let saved = store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(saved.version, 2);
}

/// Orders written before the read budget became a set hold it as a number
/// (`intent_reads`); adding a set to that attribute would fail every read of
/// such an order with DynamoDB's ValidationException (a 502).
#[tokio::test]
async fn an_order_with_the_old_numeric_read_budget_can_still_be_read() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::domain::Mode;
    let app = in_process::service_app().await;
    let order = one_item_order(StoreId::parse(&new_store_id()).unwrap(), Mode::Test, 700);
    stored_checkout(app, &order).await;
    dynamodb()
        .await
        .update_item()
        .table_name(env("TABLE_NAME"))
        .key("pk", AttributeValue::S(format!("ORDER#{}", order.order_id)))
        .key("sk", AttributeValue::S("ORDER".into()))
        .update_expression("SET intent_reads = :spent")
        .expression_attribute_values(":spent", AttributeValue::N("50".into()))
        .send()
        .await
        .unwrap();
    assert!(
        app.table
            .spend_intent_read(&order.order_id, 2)
            .await
            .unwrap()
    );
}
