//! Rendering an after-action [`Summary`] for people (Markdown or HTML, in Chinese or
//! English) and for programs (JSON). The same summary always renders to the same bytes.

use std::fmt::Write;

use events_schema::{EscalationTarget, IssueCategory};

use crate::{IssueState, Summary};

/// The output format of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
    Html,
}

/// The language of a report's words (the facts themselves are as recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

fn category(lang: Lang, category: IssueCategory) -> &'static str {
    match category {
        IssueCategory::CourierCongestion => t(lang, "courier congestion", "快递车辆拥堵"),
        IssueCategory::RefusedHealthCodeScan => t(lang, "refused health-code scan", "拒绝扫码"),
        IssueCategory::UnverifiableTravelHistory => t(lang, "unverifiable travel history", "行程轨迹无法核实"),
        IssueCategory::Weather => t(lang, "weather", "天气"),
        IssueCategory::Equipment => t(lang, "equipment", "设备"),
        IssueCategory::Staffing => t(lang, "staffing", "人手"),
        IssueCategory::Crowding => t(lang, "crowding", "人员聚集"),
        IssueCategory::DeliveryBlocked => t(lang, "delivery blocked", "送货受阻"),
        IssueCategory::Other => t(lang, "other", "其他"),
    }
}

fn state(lang: Lang, state: IssueState) -> &'static str {
    match state {
        IssueState::Raised => t(lang, "raised", "已上报"),
        IssueState::Acknowledged => t(lang, "acknowledged", "已确认"),
        IssueState::Assigned => t(lang, "assigned", "已指派"),
        IssueState::InProgress => t(lang, "in progress", "处理中"),
        IssueState::Escalated => t(lang, "escalated", "已提级"),
        IssueState::Resolved => t(lang, "resolved", "已解决"),
        IssueState::Verified => t(lang, "resolved and verified", "已解决并回头看核实"),
    }
}

fn target(lang: Lang, target: EscalationTarget) -> &'static str {
    match target {
        EscalationTarget::Subdistrict => t(lang, "subdistrict", "街道"),
        EscalationTarget::UrbanManagement => t(lang, "urban-management enforcement", "城管执法"),
        EscalationTarget::Police => t(lang, "police", "辖区民警"),
        EscalationTarget::PropertyManagement => t(lang, "property management", "物业管理处"),
        EscalationTarget::Other => t(lang, "other", "其他"),
    }
}

/// A report as titled sections of lines, before it becomes Markdown or HTML.
struct Section {
    title: &'static str,
    lines: Vec<String>,
}

fn sections(summary: &Summary, lang: Lang) -> Vec<Section> {
    let none = || vec![t(lang, "none", "无").to_owned()];
    let or_none = |lines: Vec<String>| if lines.is_empty() { none() } else { lines };
    let checks = summary
        .checks
        .iter()
        .map(|c| {
            let expected = c.expected.map_or_else(|| t(lang, "no schedule", "未排班").to_owned(), |e| e.to_string());
            let gaps: Vec<String> = c
                .gaps
                .iter()
                .map(|g| format!("{} {}-{}", g.day, g.start.strftime("%H:%M"), g.end.strftime("%H:%M")))
                .collect();
            let gaps = if gaps.is_empty() { t(lang, "no gaps", "无空档").to_owned() } else { gaps.join(", ") };
            match lang {
                Lang::En => format!(
                    "{} ({}): {} checks of {expected} scheduled, {} found issues; gaps: {gaps}",
                    c.name, c.checkpoint_id, c.checks, c.issues_found
                ),
                Lang::Zh => format!(
                    "{}（{}）：巡查 {} 次，排班 {expected} 次，发现问题 {} 次；空档：{gaps}",
                    c.name, c.checkpoint_id, c.checks, c.issues_found
                ),
            }
        })
        .collect();
    let by_category = summary.raised_by_category.iter().map(|(c, n)| format!("{}: {n}", category(lang, *c))).collect();
    let issues = summary
        .issues
        .iter()
        .map(|i| {
            let minutes = |m: Option<i64>| m.map_or_else(|| "-".to_owned(), |m| m.to_string());
            let escalated: Vec<&str> = i.escalated_to.iter().map(|e| target(lang, *e)).collect();
            let escalated = if escalated.is_empty() { "-".to_owned() } else { escalated.join(", ") };
            let actions = if i.actions.is_empty() { "-".to_owned() } else { i.actions.join("; ") };
            match lang {
                Lang::En => format!(
                    "{} at {} ({}): {}. State: {}. First action after {} min, resolved after {} min. Actions: {actions}. Escalated to: {escalated}. Reopened {} times.",
                    i.issue_id, i.checkpoint_id, category(lang, i.category), i.summary, state(lang, i.state),
                    minutes(i.minutes_to_first_action), minutes(i.minutes_to_resolution), i.reopened
                ),
                Lang::Zh => format!(
                    "{}（{}，{}）：{}。状态：{}。首次处置用时 {} 分钟，解决用时 {} 分钟。处置：{actions}。提级至：{escalated}。重新打开 {} 次。",
                    i.issue_id, i.checkpoint_id, category(lang, i.category), i.summary, state(lang, i.state),
                    minutes(i.minutes_to_first_action), minutes(i.minutes_to_resolution), i.reopened
                ),
            }
        })
        .collect();
    let counts = match lang {
        Lang::En => vec![
            format!("resolved: {}, still open: {}", summary.resolved, summary.still_open),
            format!(
                "actions: {}, escalations: {}, verifications: {}, reopenings: {}",
                summary.actions, summary.escalations, summary.verifications, summary.reopenings
            ),
            format!("inspections: {}, quarantine releases: {}", summary.inspections, summary.quarantine_releases),
            format!("corrections: {}, retractions: {}", summary.corrections, summary.retractions),
        ],
        Lang::Zh => vec![
            format!("已解决：{}，仍未解决：{}", summary.resolved, summary.still_open),
            format!(
                "处置：{}，提级：{}，回头看核实：{}，重新打开：{}",
                summary.actions, summary.escalations, summary.verifications, summary.reopenings
            ),
            format!("复工复产检查：{}，解除居家隔离：{}", summary.inspections, summary.quarantine_releases),
            format!("更正：{}，撤销：{}", summary.corrections, summary.retractions),
        ],
    };
    let tally = &summary.tallies;
    let tallies = vec![match lang {
        Lang::En => format!(
            "people screened: {}, vehicles: {}, fever flags: {}, refused scans: {}, temporary passes: {}",
            tally.people_screened,
            tally.vehicles,
            tally.fever_flags,
            tally.refused_scans,
            tally.temporary_passes_issued
        ),
        Lang::Zh => format!(
            "测温验码人数：{}，车辆：{}，发热：{}，拒绝扫码：{}，临时出入证：{}",
            tally.people_screened,
            tally.vehicles,
            tally.fever_flags,
            tally.refused_scans,
            tally.temporary_passes_issued
        ),
    }];
    let seal = vec![match lang {
        Lang::En => format!(
            "every event of the period lies at or before position {}, whose chain hash is {}",
            summary.seal_position, summary.seal_hash
        ),
        Lang::Zh => format!(
            "本期所有事件均位于位置 {} 之前（含），该位置的链式哈希为 {}",
            summary.seal_position, summary.seal_hash
        ),
    }];
    let supplies = summary
        .supplies
        .iter()
        .map(|s| {
            let items: Vec<String> = s
                .items
                .iter()
                .map(|item| {
                    format!(
                        "{} {}{}",
                        item.quantity,
                        item.unit.as_deref().map(|u| format!("{u} ")).unwrap_or_default(),
                        item.item
                    )
                })
                .collect();
            format!("{} -> {}", items.join(", "), s.recipient)
        })
        .collect();
    let field_notes = summary
        .field_notes
        .iter()
        .map(|n| format!("{} {}: {}", n.occurred_at_local.strftime("%H:%M"), n.author, n.text))
        .collect();
    vec![
        Section { title: t(lang, "Checks against schedule", "巡查与排班"), lines: or_none(checks) },
        Section {
            title: t(lang, "Issues raised, by category", "新增问题（按类别）"), lines: or_none(by_category)
        },
        Section { title: t(lang, "Issues", "问题处置"), lines: or_none(issues) },
        Section { title: t(lang, "Figures", "统计"), lines: counts },
        Section { title: t(lang, "Gate traffic", "出入口通行"), lines: tallies },
        Section { title: t(lang, "Supplies", "物资"), lines: or_none(supplies) },
        Section { title: t(lang, "Field notes", "工作日记"), lines: or_none(field_notes) },
        Section { title: t(lang, "Integrity seal", "完整性封存"), lines: seal },
    ]
}

fn title(summary: &Summary, lang: Lang) -> String {
    let period = if summary.from == summary.to {
        summary.from.to_string()
    } else {
        format!("{} – {}", summary.from, summary.to)
    };
    let scope = summary.site_id.as_ref().map(|s| format!(" · {s}")).unwrap_or_default();
    format!("{} {period}{scope}", t(lang, "After-action summary", "工作总结"))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders `summary` as `format` in `lang`.
pub fn render(summary: &Summary, format: Format, lang: Lang) -> String {
    let mut out = String::new();
    match format {
        Format::Json => {
            out = serde_json::to_string_pretty(summary).unwrap_or_default();
            out.push('\n');
        }
        Format::Markdown => {
            let _ = writeln!(out, "# {}", title(summary, lang));
            for section in sections(summary, lang) {
                let _ = writeln!(out, "\n## {}\n", section.title);
                for line in section.lines {
                    let _ = writeln!(out, "- {line}");
                }
            }
        }
        Format::Html => {
            let lang_tag = if lang == Lang::Zh { "zh" } else { "en" };
            let heading = escape_html(&title(summary, lang));
            let _ = writeln!(
                out,
                "<!doctype html>\n<html lang=\"{lang_tag}\">\n<head><meta charset=\"utf-8\"><title>{heading}</title>"
            );
            let _ = writeln!(
                out,
                "<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}@media print{{body{{margin:0}}}}</style></head>\n<body>\n<h1>{heading}</h1>"
            );
            for section in sections(summary, lang) {
                let _ = writeln!(out, "<h2>{}</h2>\n<ul>", escape_html(section.title));
                for line in section.lines {
                    let _ = writeln!(out, "<li>{}</li>", escape_html(&line));
                }
                let _ = writeln!(out, "</ul>");
            }
            let _ = writeln!(out, "</body>\n</html>");
        }
    }
    out
}
