//! A secret held in AWS Secrets Manager: its `AWSCURRENT` version, and its
//! `AWSPREVIOUS` one when there is one (after the first rotation). Putting a
//! new value (`put-secret-value`) moves the stages, so a rotation needs no
//! change of ours.

use super::{SecretKeys, SecretSource};
use crate::config::InternalSecret;
use crate::error::{BoxError, cause_chain};
use crate::vault::BoxFuture;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use zeroize::Zeroizing;

pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    /// ARN (or name) of the secret, for the reads and for error messages.
    secret_id: String,
    /// The variable that named it, for error messages.
    variable: &'static str,
}

impl SecretsManagerSource {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        variable: &'static str,
    ) -> Self {
        SecretsManagerSource {
            client,
            secret_id,
            variable,
        }
    }

    /// The value at `stage` and when that version was created; `None` when
    /// no version carries that stage.
    async fn stage(&self, stage: &str) -> Result<Option<(InternalSecret, Option<u64>)>, BoxError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                if matches!(
                    err.as_service_error(),
                    Some(GetSecretValueError::ResourceNotFoundException(_))
                ) && stage != "AWSCURRENT"
                {
                    return Ok(None);
                }
                return Err(format!(
                    "could not read {stage} of secret {} ({}): {}",
                    self.secret_id,
                    self.variable,
                    cause_chain(&err)
                )
                .into());
            }
        };
        let created = out
            .created_date
            .and_then(|date| u64::try_from(date.secs()).ok());
        let value = Zeroizing::new(out.secret_string.ok_or_else(|| {
            format!(
                "{stage} of secret {} ({}) has no SecretString",
                self.secret_id, self.variable
            )
        })?);
        let secret = InternalSecret::named(self.variable, value.to_string())
            .map_err(|err| format!("{stage} of secret {}: {err}", self.secret_id))?;
        Ok(Some((secret, created)))
    }
}

impl SecretSource for SecretsManagerSource {
    fn fetch(&self) -> BoxFuture<'_, Result<SecretKeys, BoxError>> {
        Box::pin(async move {
            let (current, current_since) = self
                .stage("AWSCURRENT")
                .await?
                .ok_or_else(|| format!("secret {} has no AWSCURRENT version", self.secret_id))?;
            let previous = self.stage("AWSPREVIOUS").await?.map(|(value, _)| value);
            Ok(SecretKeys {
                current,
                previous,
                current_since,
            })
        })
    }
}
