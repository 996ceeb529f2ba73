//! Unmeasured setup, written straight to the table as the system tests do:
//! connected stores whose `sk_test_` keys (and, for the webhook benchmark,
//! `whsec_` signing secrets) are sealed through the real KMS vault, and
//! pending orders with their checkout sessions, optionally with an intent.

use crate::BoxError;
use shared::auth::session_token;
use shared::domain::{Currency, KeyKind, LineItem, Mode, PublishableKey, StoreId};
use shared::store::{
    AuditEntry, CheckoutSession, Order, StripeConnection, WebhookConfig, WebhookSource,
};
use shared::vault::{EncryptionContext, Purpose};
use shared::{App, clock};

/// One customer checkout: the token is what the browser holds.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub store_id: StoreId,
    pub order_id: String,
    pub token: String,
}

/// A store connected to Stripe (test mode) with a fresh key pair.
pub async fn connect_store(app: &App) -> Result<StoreId, BoxError> {
    save_store(app, None, None).await
}

/// A store connected with exactly this secret key (say, one Stripe refuses).
pub async fn connect_store_with_key(app: &App, secret_key: &str) -> Result<StoreId, BoxError> {
    save_store(app, None, Some(secret_key)).await
}

/// A store connected to Stripe (test mode) with a fresh key pair and a
/// webhook signing secret pasted by the merchant (as the connect form saves
/// it: sealed with `Purpose::WebhookSecret`, source `Manual`). Returns the
/// store and the plain `whsec_` secret, to sign deliveries with.
pub async fn connect_store_with_webhook(app: &App) -> Result<(StoreId, String), BoxError> {
    let whsec = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    let store_id = save_store(app, Some(&whsec), None).await?;
    Ok((store_id, whsec))
}

async fn save_store(
    app: &App,
    whsec: Option<&str>,
    secret_key: Option<&str>,
) -> Result<StoreId, BoxError> {
    let store_id = StoreId::parse(&uuid::Uuid::new_v4().to_string())?;
    // localstripe accepts any sk_test_ key with 8+ characters after the prefix.
    let body = uuid::Uuid::new_v4().simple().to_string();
    let secret_key = secret_key.map_or_else(|| format!("sk_test_{body}"), str::to_owned);
    let sealed = app
        .vault
        .seal(
            EncryptionContext::new(store_id, Purpose::StripeSecretKey),
            &secret_key,
        )
        .await?;
    let webhook_secret = match whsec {
        None => None,
        Some(whsec) => Some(WebhookConfig {
            secret: app
                .vault
                .seal(
                    EncryptionContext::new(store_id, Purpose::WebhookSecret),
                    whsec,
                )
                .await?,
            source: WebhookSource::Manual,
            endpoint_id: None,
        }),
    };
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
    app.store.save_connection(&connection, &audit, None).await?;
    Ok(store_id)
}

/// A pending order of `amount` cents and a session for it, valid for an hour.
pub async fn create_checkout(
    app: &App,
    store_id: StoreId,
    amount: u64,
) -> Result<Checkout, BoxError> {
    let order = pending_order(store_id, amount)?;
    let token = save_checkout(app, &order).await?;
    Ok(Checkout {
        store_id,
        order_id: order.order_id,
        token,
    })
}

/// A pending order of `amount` cents and a session for it, with
/// `payment_intent_id` attached as create-intent attaches one (order and
/// `PI#` link in one transaction), so webhooks about that intent find it.
/// The intent exists only here: nothing is asked of Stripe.
pub async fn create_checkout_with_intent(
    app: &App,
    store_id: StoreId,
    amount: u64,
    payment_intent_id: &str,
) -> Result<Checkout, BoxError> {
    let order = pending_order(store_id, amount)?;
    let token = save_checkout(app, &order).await?;
    let attached = app
        .store
        .attach_intent(
            &order,
            payment_intent_id,
            1,
            Mode::Test,
            false,
            clock::now(),
        )
        .await?;
    if !attached {
        return Err(format!(
            "order {}: intent {payment_intent_id} not attached",
            order.order_id
        )
        .into());
    }
    Ok(Checkout {
        store_id,
        order_id: order.order_id,
        token,
    })
}

/// A pending order of `amount` cents and a session for it, with a
/// PaymentIntent made for it in the Stripe emulator with the store's own
/// key (the metadata create-intent sets), attached as create-intent
/// attaches one. With `paid`, the intent is paid with a test card, so
/// Stripe confirms the payment a `succeeded` event announces (the webhook
/// reads it back before it pays the order). Returns the intent's id.
pub async fn create_checkout_with_stripe_intent(
    app: &App,
    store_id: StoreId,
    amount: u64,
    paid: bool,
) -> Result<(Checkout, String), BoxError> {
    let order = pending_order(store_id, amount)?;
    let token = save_checkout(app, &order).await?;
    let payment_intent = stripe_intent(app, &order, paid).await?;
    let attached = app
        .store
        .attach_intent(&order, &payment_intent, 1, Mode::Test, false, clock::now())
        .await?;
    if !attached {
        return Err(format!(
            "order {}: intent {payment_intent} not attached",
            order.order_id
        )
        .into());
    }
    let checkout = Checkout {
        store_id,
        order_id: order.order_id,
        token,
    };
    Ok((checkout, payment_intent))
}

/// Makes (and with `paid`, pays) the order's intent in the Stripe emulator,
/// with the store's key as the service opens it.
async fn stripe_intent(app: &App, order: &Order, paid: bool) -> Result<String, BoxError> {
    let connection = app
        .store
        .get_connection(&order.store_id)
        .await?
        .ok_or("store not connected")?;
    let key = shared::webhooks::setup::open_secret_key(app, &connection).await?;
    let base = app.config.stripe_api_base.as_str().trim_end_matches('/');
    let http = reqwest::Client::new();
    let call = |path: &str, form: Vec<(&str, String)>| {
        http.post(format!("{base}/v1/{path}"))
            .bearer_auth(key.expose())
            .form(&form)
            .send()
    };
    let mut form = vec![
        ("amount", order.amount.to_string()),
        ("currency", order.currency.code().to_owned()),
        ("payment_method_types[]", "card".to_owned()),
        ("metadata[store_id]", order.store_id.to_string()),
        ("metadata[order_id]", order.order_id.clone()),
    ];
    if paid {
        let method: serde_json::Value = call(
            "payment_methods",
            vec![
                ("type", "card".to_owned()),
                ("card[number]", "4242424242424242".to_owned()),
                ("card[exp_month]", "12".to_owned()),
                ("card[exp_year]", "2034".to_owned()),
                ("card[cvc]", "123".to_owned()),
            ],
        )
        .await?
        .error_for_status()?
        .json()
        .await?;
        let method = method["id"].as_str().ok_or("payment method without id")?;
        form.push(("payment_method", method.to_owned()));
        form.push(("confirm", "true".to_owned()));
    }
    let intent: serde_json::Value = call("payment_intents", form)
        .await?
        .error_for_status()?
        .json()
        .await?;
    let expected = if paid {
        "succeeded"
    } else {
        "requires_payment_method"
    };
    if intent["status"] != expected {
        return Err(format!("emulator intent is {}, not {expected}", intent["status"]).into());
    }
    Ok(intent["id"].as_str().ok_or("intent without id")?.to_owned())
}

fn pending_order(store_id: StoreId, amount: u64) -> Result<Order, BoxError> {
    Ok(Order::pending(
        store_id,
        Mode::Test,
        Currency::parse("eur")?,
        amount,
        vec![LineItem {
            name: "Blue mug".into(),
            unit_amount: amount,
            quantity: 1,
        }],
        clock::now(),
    ))
}

/// Writes the order with a session valid for an hour; returns the token.
async fn save_checkout(app: &App, order: &Order) -> Result<String, BoxError> {
    let now = clock::now();
    let (token, token_hash) = session_token::generate()?;
    let session = CheckoutSession {
        token_hash,
        order_id: order.order_id.clone(),
        store_id: order.store_id,
        expires_at: now + 3600,
        created_at: now,
    };
    app.store
        .create_checkout(order, &session, None, now)
        .await?;
    Ok(token)
}

/// `stores` connected stores with `per_store` checkouts each, returned
/// interleaved round-robin (store 0, 1, …, n-1, 0, 1, …).
pub async fn stores_with_checkouts(
    app: &App,
    stores: usize,
    per_store: usize,
) -> Result<Vec<Checkout>, BoxError> {
    let mut ids = Vec::with_capacity(stores);
    for _ in 0..stores {
        ids.push(connect_store(app).await?);
    }
    let mut checkouts = Vec::with_capacity(stores * per_store);
    for round in 0..per_store {
        for store_id in &ids {
            // Different amounts, so an intent mixed up between orders shows.
            let amount = 1000 + round as u64;
            checkouts.push(create_checkout(app, *store_id, amount).await?);
        }
    }
    Ok(checkouts)
}
