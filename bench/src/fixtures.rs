//! Unmeasured setup, written straight to the table: connected stores whose
//! `sk_test_` keys and `whsec_` signing secrets are sealed through the real
//! KMS vault (as the connect form saves a pasted secret), pending orders
//! with their checkout sessions, and payments made in the Stripe emulator.

use crate::BoxError;
use shared::auth::session_token;
use shared::domain::{
    Currency, KeyKind, LineItem, Mode, Money, Order, OrderId, PublishableKey, StoreId,
};
use shared::store::{AuditEntry, CheckoutSession, StripeConnection, WebhookConfig, WebhookSource};
use shared::vault::{EncryptionContext, Purpose};
use shared::{App, clock};

/// One customer checkout: the token is what the browser holds.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub order_id: OrderId,
    pub token: String,
}

/// A store connected to Stripe (test mode) with a fresh key pair and a
/// webhook signing secret pasted by the merchant (as the connect form saves
/// it: sealed with `Purpose::WebhookSecret`, source `Manual`). Returns the
/// store and the plain `whsec_` secret, to sign deliveries with.
pub async fn connect_store_with_webhook(app: &App) -> Result<(StoreId, String), BoxError> {
    let whsec = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    let store_id = StoreId::parse(&uuid::Uuid::new_v4().to_string())?;
    // localstripe accepts any sk_test_ key with 8+ characters after the prefix.
    let body = uuid::Uuid::new_v4().simple().to_string();
    let secret_key = format!("sk_test_{body}");
    let sealed = app
        .vault
        .seal(
            EncryptionContext::new(store_id, Purpose::StripeSecretKey),
            &secret_key,
        )
        .await?;
    let webhook_secret = Some(WebhookConfig {
        secret: app
            .vault
            .seal(
                EncryptionContext::new(store_id, Purpose::WebhookSecret),
                &whsec,
            )
            .await?,
        source: WebhookSource::Manual,
        endpoint_id: None,
    });
    let now = clock::now();
    let connection = StripeConnection {
        store_id,
        publishable_key: PublishableKey::parse(&format!("pk_test_{body}"))?,
        key_kind: KeyKind::Secret,
        account_id: None,
        secret_key: sealed,
        webhook_secret,
        connected_at: now,
        updated_at: now,
        version: 1,
        activity: Default::default(),
        last_key_replacement: None,
        publishable_key_proven_at: None,
    };
    let audit = AuditEntry {
        action: "stripe_connected",
        actor: "bench".into(),
        at_millis: clock::now_millis(),
        source_ip: None,
        replacement: None,
    };
    app.table.save_connection(&connection, &audit, None).await?;
    Ok((store_id, whsec))
}

/// A pending order of `amount` cents and a session for it, valid for an hour.
pub async fn create_checkout(
    app: &App,
    store_id: StoreId,
    amount: u64,
) -> Result<Checkout, BoxError> {
    let now = clock::now();
    let items = vec![LineItem {
        name: "Blue mug".into(),
        unit_amount: amount,
        quantity: 1,
    }];
    let order = Order::pending(
        store_id,
        Mode::Test,
        Money::new(amount, Currency::parse("eur")?),
        items,
        now,
    );
    let (token, token_hash) = session_token::generate()?;
    let session = CheckoutSession {
        token_hash,
        order_id: order.order_id,
        store_id,
        expires_at: now + 3600,
        created_at: now,
    };
    app.table
        .create_checkout(&order, &session, None, now)
        .await?;
    Ok(Checkout {
        order_id: order.order_id,
        token,
    })
}

/// The customer pays `payment_intent` with a test card in the Stripe
/// emulator (what Stripe.js and Stripe do), with the store's key as the
/// service opens it. The webhook then reads it back `succeeded`.
pub async fn pay(app: &App, store_id: StoreId, payment_intent: &str) -> Result<(), BoxError> {
    let connection = app
        .table
        .get_connection(&store_id)
        .await?
        .ok_or("store not connected")?;
    let key = shared::webhooks::setup::open_secret_key(app, &connection).await?;
    let base = app.config.stripe_api_base.as_str().trim_end_matches('/');
    let http = reqwest::Client::new();
    let call = |path: String, form: Vec<(&'static str, String)>| {
        let request = http
            .post(format!("{base}/v1/{path}"))
            .bearer_auth(key.expose())
            .form(&form);
        async move {
            let answer: serde_json::Value =
                request.send().await?.error_for_status()?.json().await?;
            Ok::<_, BoxError>(answer)
        }
    };
    let card = [
        ("4242424242424242", "card[number]"),
        ("12", "card[exp_month]"),
        ("2034", "card[exp_year]"),
        ("123", "card[cvc]"),
    ];
    let mut form = vec![("type", "card".to_owned())];
    form.extend(
        card.iter()
            .map(|(value, field)| (*field, (*value).to_owned())),
    );
    let method = call("payment_methods".into(), form).await?;
    let method = method["id"]
        .as_str()
        .ok_or("payment method without id")?
        .to_owned();
    let path = format!("payment_intents/{payment_intent}");
    call(path.clone(), vec![("payment_method", method)]).await?;
    let paid = call(format!("{path}/confirm"), Vec::new()).await?;
    if paid["status"] != "succeeded" {
        return Err(format!("emulator intent is {}, not succeeded", paid["status"]).into());
    }
    Ok(())
}
