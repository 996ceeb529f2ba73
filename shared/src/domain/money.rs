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
