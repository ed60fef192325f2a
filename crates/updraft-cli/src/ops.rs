//! SKELETON (being implemented): `updraft audit` and `updraft webhook …`.

use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::Outcome;
use clap::{Args, Subcommand};

#[derive(Args, Clone, Debug)]
pub struct AuditArgs {
    /// Only this app's changes
    pub app_id: Option<String>,
}

#[derive(Subcommand, Clone, Debug)]
pub enum WebhookCommand {
    /// List webhooks
    List,
}

pub async fn audit(_client: &ApiClient, _args: &AuditArgs) -> Result<Outcome, CliError> {
    Err(CliError::new("not_implemented", "not implemented yet"))
}

pub async fn webhook(_client: &ApiClient, _command: WebhookCommand) -> Result<Outcome, CliError> {
    Err(CliError::new("not_implemented", "not implemented yet"))
}
