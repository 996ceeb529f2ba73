//! Currencies and amounts in minor units, as Stripe takes them. The table
//! holds the currencies we accept, each with its decimal exponent (how a
//! page shows it) and Stripe's minimum charge (below it Stripe refuses the
//! PaymentIntent, so we refuse the checkout session up front).

use crate::error::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
    minimum: u64,
}

// (code, exponent, Stripe's minimum charge in minor units)
const CURRENCIES: &[(&str, u8, u64)] = &[
    ("aud", 2, 50),
    ("brl", 2, 50),
    ("cad", 2, 50),
    ("chf", 2, 50),
    ("czk", 2, 1500),
    ("dkk", 2, 250),
    ("eur", 2, 50),
    ("gbp", 2, 30),
    ("hkd", 2, 400),
    ("huf", 2, 17500),
    ("inr", 2, 50),
    ("jpy", 0, 50),
    ("mxn", 2, 1000),
    ("myr", 2, 200),
    ("nok", 2, 300),
    ("nzd", 2, 50),
    ("pln", 2, 200),
    ("ron", 2, 200),
    ("sek", 2, 300),
    ("sgd", 2, 50),
    ("thb", 2, 1000),
    ("usd", 2, 50),
];

/// Stripe's largest amount for most currencies (8 digits).
pub const MAX_AMOUNT: u64 = 99_999_999;

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let code = raw.trim().to_ascii_lowercase();
        CURRENCIES
            .iter()
            .find(|(c, ..)| *c == code)
            .map(|&(code, exponent, minimum)| Currency {
                code,
                exponent,
                minimum,
            })
            .ok_or_else(|| {
                AppError::unprocessable(
                    "invalid_currency",
                    format!("currency must be an ISO 4217 code we accept ({})", codes()),
                )
            })
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    pub fn minimum(self) -> u64 {
        self.minimum
    }

    /// `12.34 EUR`, `1,500 JPY`-style display for pages (no grouping).
    pub fn format(self, minor: u64) -> String {
        let upper = self.code.to_ascii_uppercase();
        if self.exponent == 0 {
            return format!("{minor} {upper}");
        }
        let scale = 10u64.pow(u32::from(self.exponent));
        format!(
            "{}.{:0width$} {upper}",
            minor / scale,
            minor % scale,
            width = usize::from(self.exponent)
        )
    }
}

/// An amount in a currency's minor units (cents, or yen), as Stripe takes
/// it. Sums cannot mix currencies or wrap: they answer `None` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    minor: u64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: u64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::new(0, currency)
    }

    /// Minor units: what Stripe's `amount` holds.
    pub fn minor(self) -> u64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The sum, or `None` for another currency or an overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money::new(
            self.minor.checked_add(other.minor)?,
            self.currency,
        ))
    }

    /// `times` of this amount (a line's quantity), or `None` on overflow.
    pub fn checked_mul(self, times: u64) -> Option<Money> {
        Some(Money::new(self.minor.checked_mul(times)?, self.currency))
    }

    /// Whether Stripe's `amount` and `currency` (a code as Stripe spells
    /// it, which may be one we do not take) are exactly this money.
    pub fn is(self, amount: u64, currency: &str) -> bool {
        amount == self.minor && currency.eq_ignore_ascii_case(self.currency.code)
    }
}

/// `12.34 EUR`, as pages show it.
impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.currency.format(self.minor))
    }
}

fn codes() -> String {
    CURRENCIES
        .iter()
        .map(|(c, ..)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_knows_exponents() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.code(), "eur");
        assert_eq!(eur.format(1234), "12.34 EUR");
        assert_eq!(eur.format(5), "0.05 EUR");
        assert_eq!(Currency::parse("jpy").unwrap().format(1500), "1500 JPY");
    }

    #[test]
    fn money_sums_in_one_currency_and_never_wraps() {
        let eur = Currency::parse("eur").unwrap();
        let usd = Currency::parse("usd").unwrap();
        let price = Money::new(1250, eur);
        assert_eq!(price.checked_mul(2), Some(Money::new(2500, eur)));
        assert_eq!(
            price.checked_add(Money::new(499, eur)),
            Some(Money::new(1749, eur))
        );
        assert_eq!(price.checked_add(Money::new(499, usd)), None, "mixed");
        assert_eq!(Money::new(u64::MAX, eur).checked_add(price), None);
        assert_eq!(price.checked_mul(u64::MAX), None);
        assert_eq!(price.to_string(), "12.50 EUR");
        assert!(price.is(1250, "EUR"));
        assert!(!price.is(1250, "usd"));
        assert!(!price.is(1251, "eur"));
    }

    #[test]
    fn rejects_unknown_codes() {
        for raw in ["", "eu", "euro", "xxx", "btc"] {
            assert_eq!(
                Currency::parse(raw).unwrap_err().code(),
                "invalid_currency",
                "{raw}"
            );
        }
    }
}
