//! What the checkout page's Content-Security-Policy allows for Stripe.js and
//! the Payment Element: exactly the sources Stripe's integration security
//! guide lists (https://docs.stripe.com/security/guide#content-security-policy)
//! when the page loads the real Stripe.js, and only the emulator's origin
//! when it loads the emulator's mock (the local stack).

use url::Url;

/// Where the real Stripe.js comes from.
pub const STRIPE_JS_ORIGIN: &str = "https://js.stripe.com";

/// Stripe's guide, directive by directive. `*.js.stripe.com` serves the
/// Elements frames and the scripts inside them; `hooks.stripe.com` the 3D
/// Secure frames (every European card payment under SCA);
/// `api.stripe.com` is what Stripe.js calls from the browser; the Google
/// Maps origins serve the address autocomplete Stripe.js may show.
const SCRIPT: [&str; 3] = [
    STRIPE_JS_ORIGIN,
    "https://*.js.stripe.com",
    "https://maps.googleapis.com",
];
const FRAME: [&str; 3] = [
    STRIPE_JS_ORIGIN,
    "https://*.js.stripe.com",
    "https://hooks.stripe.com",
];
const CONNECT: [&str; 2] = ["https://api.stripe.com", "https://maps.googleapis.com"];

/// The sources Stripe.js needs, per directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeSources {
    pub script: Vec<String>,
    pub frame: Vec<String>,
    pub connect: Vec<String>,
}

impl StripeSources {
    /// For a page loading Stripe.js from `stripe_js_url`, with our server
    /// calling Stripe at `stripe_api_base`. The real Stripe.js calls the
    /// real API whatever our server uses, so it gets Stripe's list alone;
    /// a mock Stripe.js (the emulator's) talks to the API it is served
    /// with, so it gets its own origin and the API's.
    pub fn new(stripe_js_url: &Url, stripe_api_base: &Url) -> Self {
        let js = stripe_js_url.origin().ascii_serialization();
        if js == STRIPE_JS_ORIGIN {
            let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
            return StripeSources {
                script: owned(&SCRIPT),
                frame: owned(&FRAME),
                connect: owned(&CONNECT),
            };
        }
        let api = stripe_api_base.origin().ascii_serialization();
        let mut mock = vec![js];
        if !mock.contains(&api) {
            mock.push(api);
        }
        StripeSources {
            script: mock.clone(),
            frame: mock.clone(),
            connect: mock,
        }
    }
}
