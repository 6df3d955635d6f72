//! The secret fields' types: zeroized on drop, redacted in `Debug`, compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Zeroized on drop, redacted in `Debug`, compared in constant time; the value is reachable
        /// only through [`expose_secret`](Self::expose_secret).
        #[derive(Clone)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Wraps a secret value. The `String` is moved, not copied.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Zeroizing::new(value.into()))
            }

            /// The secret itself. Every call site that uses it is a place where it can leak.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }

        impl Eq for $name {}
    };
}

secret_string!(
    /// The OAuth client secret.
    ClientSecret
);
secret_string!(
    /// A refresh token (long-lived; spends to get new access tokens).
    RefreshToken
);
secret_string!(
    /// An access token (short-lived bearer credential).
    AccessToken
);
secret_string!(
    /// A grant token (one-time authorization code).
    GrantToken
);

/// The Zoho SDK's user signature: the user name (an e-mail address in Zoho's SDKs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserSignature(String);

impl UserSignature {
    /// Wraps a user name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.0
    }
}
