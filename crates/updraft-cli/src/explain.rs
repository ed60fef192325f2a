//! `updraft device explain`: the server's explanation of a device's update
//! decision, as text (`--json` prints the wire type as it came).

use crate::table::sanitize_cell;
use updraft_api::DeviceExplanation;

/// The explanation for people: the device, its channel and why, each rule
/// with its outcome, the answer, and what would change it.
pub fn render(explained: &DeviceExplanation) -> String {
    let device = &explained.device;
    let or_dash = |value: &Option<String>| {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .unwrap_or("-")
            .to_string()
    };
    let mut lines = vec![
        format!("Device {} ({})", device.device_id, device.platform),
        format!(
            "  bundle {}, native {}, plugin {}, {} build, {}",
            or_dash(&device.version_name),
            or_dash(&device.version_build),
            or_dash(&device.plugin_version),
            if device.is_prod {
                "production"
            } else {
                "development"
            },
            if device.is_emulator {
                "emulator"
            } else {
                "physical device"
            },
        ),
        format!(
            "  key id {}, defaultChannel {}, override {}",
            or_dash(&device.key_id),
            or_dash(&device.default_channel),
            explained
                .channel_override
                .as_ref()
                .map_or("-".to_string(), |o| format!("{} ({})", o.channel, o.source)),
        ),
        String::new(),
        format!(
            "Channel: {} ({})",
            or_dash(&explained.channel),
            explained.channel_source.as_deref().unwrap_or("none"),
        ),
        format!("  because: {}", explained.channel_reason),
    ];
    if let Some(target) = &explained.target {
        lines.push(format!("  serves: {target}"));
    }
    lines.push(String::new());
    lines.push("Rules, in order:".to_string());
    let width = explained
        .rules
        .iter()
        .map(|rule| rule.rule.chars().count())
        .max()
        .unwrap_or(0);
    for rule in &explained.rules {
        let outcome = match rule.outcome.as_str() {
            "not_reached" => "-",
            other => other,
        };
        let detail = match &rule.error {
            Some(code) => format!("{} [{code}]", rule.detail),
            None => rule.detail.clone(),
        };
        lines.push(format!("  {outcome:<8} {:<width$}  {detail}", rule.rule));
    }
    lines.push(String::new());
    let answer = &explained.answer;
    lines.push(match (&answer.kind, &answer.version) {
        (Some(kind), _) => format!(
            "Answer: {} ({kind}): {}",
            answer.outcome,
            answer.message.as_deref().unwrap_or_default()
        ),
        (None, Some(version)) if version == "builtin" => {
            "Answer: builtin (revert to the bundle inside the native app)".to_string()
        }
        (None, Some(version)) => format!("Answer: bundle {version}"),
        (None, None) => format!("Answer: {}", answer.outcome),
    });
    if !explained.remedies.is_empty() {
        lines.push("To change it:".to_string());
        for remedy in &explained.remedies {
            lines.push(format!("  {}", remedy.summary));
            if let Some(command) = &remedy.command {
                lines.push(format!("    {command}"));
            }
        }
    }
    lines
        .iter()
        .map(|line| sanitize_cell(line))
        .collect::<Vec<_>>()
        .join("\n")
}
