//! Why a verified event changed nothing, as the webhook answers it
//! (`no change: {reason}`). BMOS and operators read these; the API's result
//! pattern (openapi.yaml) lists every one, which the test below holds.

pub const NOT_ACTED_ON: &str = "event type not acted on";
pub const NOT_OURS: &str = "payment intent not made by us";
pub const INTENT_REPLACED: &str = "intent was replaced on the order";
pub const NOT_ALLOWED: &str = "order does not allow this change";
pub const OLDER_REFUND: &str = "an older refund total";
pub const OLDER_STATE: &str = "older than the payment state the order shows";
/// Verified with this store's secret, about another store's payment (two
/// stores on one Stripe account each get every event of the account).
pub const OTHER_STORE: &str = "payment belongs to another store";
/// A test event for a live order or the other way round.
pub const OTHER_MODE: &str = "event is of another mode than the order";
/// A `succeeded` event Stripe's API does not bear out.
pub const NOT_CONFIRMED: &str = "Stripe does not confirm the payment";
/// A failed refund larger than what the order shows refunded.
pub const REFUND_NOT_RECORDED: &str = "refund not recorded on the order";

pub const ALL: [&str; 10] = [
    NOT_ACTED_ON,
    NOT_OURS,
    INTENT_REPLACED,
    NOT_ALLOWED,
    OLDER_REFUND,
    OLDER_STATE,
    OTHER_STORE,
    OTHER_MODE,
    NOT_CONFIRMED,
    REFUND_NOT_RECORDED,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn the_api_contract_lists_every_reason() {
        let spec = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml"));
        let pattern = spec
            .lines()
            .find(|line| line.contains("no change: ("))
            .expect("the webhook result pattern in openapi.yaml");
        let listed = pattern
            .split("no change: (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("a group of reasons");
        let mut listed: Vec<&str> = listed.split('|').collect();
        let mut ours = ALL.to_vec();
        listed.sort_unstable();
        ours.sort_unstable();
        assert_eq!(listed, ours);
    }
}
