//! How guessable a new passphrase is (zxcvbn, the estimator password managers use): checked
//! wherever a passphrase is chosen (`init`, `passwd`, `rekey`, `slots add-passphrase`), before
//! anything is written. Scores 0–1 are refused, 2 is warned about, unless
//! `--allow-weak-passphrase`. Argon2id slows each guess, but a passphrase a dictionary attack
//! finds in 10^6 guesses falls in days on one GPU whatever the KDF.

use tokenvault::Credential;

use crate::CliError;

/// The lowest zxcvbn score accepted without `--allow-weak-passphrase`.
const FLOOR: zxcvbn::Score = zxcvbn::Score::Two;

/// Checks the passphrase of `credential` (other kinds pass): refused below the floor,
/// warned about on stderr at the floor, unless `allow_weak`.
pub fn check_new(credential: &Credential, allow_weak: bool) -> Result<(), CliError> {
    let Some(passphrase) = credential.expose_passphrase() else {
        return Ok(());
    };
    let estimate = zxcvbn::zxcvbn(passphrase, &[]);
    let guesses = estimate.guesses_log10();
    let advice = estimate
        .feedback()
        .and_then(|f| f.warning().map(|w| format!(" ({w})")))
        .unwrap_or_default();
    let what = format!(
        "a guessable passphrase: about 10^{guesses:.0} guesses (zxcvbn score {} of 4){advice}",
        u8::from(estimate.score())
    );
    if allow_weak {
        if estimate.score() <= FLOOR {
            crate::output::warn(&format!("{what}; accepted (--allow-weak-passphrase)"));
        }
        return Ok(());
    }
    if estimate.score() < FLOOR {
        return Err(CliError::usage(format!(
            "refusing {what}. Choose a longer one (four or more random words), or pass --allow-weak-passphrase"
        )));
    }
    if estimate.score() == FLOOR {
        crate::output::warn(&format!(
            "{what}; a longer one (four or more random words) is safer"
        ));
    }
    Ok(())
}
