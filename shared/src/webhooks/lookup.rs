//! Finding an intent's order through its link (`PI#{id}`), remembered by
//! the warm container.

use super::memory::WebhookMemory;
use crate::app::App;
use crate::error::AppError;
use crate::store::IntentLink;

/// Links never change once written, so the container keeps them.
pub(super) async fn intent_link(
    app: &App,
    memory: &WebhookMemory,
    payment_intent: &str,
) -> Result<Option<IntentLink>, AppError> {
    if let Some(link) = memory.intent_link(payment_intent) {
        return Ok(Some(link));
    }
    let link = app.table.intent_link(payment_intent).await?;
    if let Some(link) = &link {
        memory.remember_intent_link(payment_intent, link.clone());
    }
    Ok(link)
}
