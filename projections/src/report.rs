//! Rendering an after-action [`Summary`] for people (Markdown, HTML, or plain text to paste
//! into a chat group; in Chinese or English) and for programs (JSON, the summary's own
//! fields). The summary holds values; the words and the layout are in the templates under
//! `projections/templates/`, compiled into the crate, rendered by minijinja. HTML is
//! escaped by the engine, never by hand. The same summary always renders to the same bytes.

use events_schema::{EscalationTarget, IssueCategory, Severity, Weather};
use jiff::civil::DateTime;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::{IssueState, Summary};

/// The output format of a report, named as the CLI's `--format` and the API's `format=` take
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// Markdown: titled sections of list items.
    #[serde(rename = "md")]
    #[cfg_attr(feature = "clap", value(name = "md"))]
    Markdown,
    /// The summary's fields as JSON, numbers as numbers.
    #[serde(rename = "json")]
    Json,
    /// A printable HTML page.
    #[serde(rename = "html")]
    Html,
    /// Short plain lines to paste into a chat group.
    #[serde(rename = "text")]
    Text,
}

impl Format {
    /// The HTTP content type of a report in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Text => "text/plain; charset=utf-8",
        }
    }
}

/// The language of a report's words (the facts themselves are as recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
}

/// Why a report could not be rendered. Neither is a bad request: both are bugs or a
/// summary the renderer cannot hold, and no report is better than a wrong one.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The summary could not be written as JSON.
    #[error("the summary could not be written as JSON")]
    Json(#[source] serde_json::Error),
    /// A report template did not compile or failed while rendering.
    #[error("the report template {template} failed")]
    Template {
        template: &'static str,
        #[source]
        source: minijinja::Error,
    },
}

/// The templates, by name; a name ending in `.html` turns on the engine's HTML escaping.
const TEMPLATES: [(&str, &str); 4] = [
    ("lines.jinja", include_str!("../templates/lines.jinja")),
    ("report.md", include_str!("../templates/report.md")),
    ("report.html", include_str!("../templates/report.html")),
    ("report.txt", include_str!("../templates/report.txt")),
];

/// The word of `lang` of the two given.
pub fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// An issue category in words.
pub fn category(lang: Lang, category: IssueCategory) -> &'static str {
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

/// An issue's state in words.
pub fn state(lang: Lang, state: IssueState) -> &'static str {
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

/// A severity in words.
pub fn severity(lang: Lang, severity: Severity) -> &'static str {
    match severity {
        Severity::Low => t(lang, "low", "低"),
        Severity::Medium => t(lang, "medium", "中"),
        Severity::High => t(lang, "high", "高"),
        Severity::Critical => t(lang, "critical", "紧急"),
    }
}

/// A weather note in words.
pub fn weather(lang: Lang, weather: Weather) -> &'static str {
    match weather {
        Weather::Clear => t(lang, "clear", "晴"),
        Weather::Cloudy => t(lang, "cloudy", "多云"),
        Weather::Rain => t(lang, "rain", "雨"),
        Weather::Cold => t(lang, "cold", "寒冷"),
        Weather::Hot => t(lang, "hot", "炎热"),
        Weather::Windy => t(lang, "windy", "大风"),
    }
}

/// Who an issue is escalated to, in words.
pub fn target(lang: Lang, target: EscalationTarget) -> &'static str {
    match target {
        EscalationTarget::Subdistrict => t(lang, "subdistrict", "街道"),
        EscalationTarget::UrbanManagement => t(lang, "urban-management enforcement", "城管执法"),
        EscalationTarget::Police => t(lang, "police", "辖区民警"),
        EscalationTarget::PropertyManagement => t(lang, "property management", "物业管理处"),
        EscalationTarget::Other => t(lang, "other", "其他"),
    }
}

/// The template engine with the report templates, and the words of `lang` as the
/// template function `t(en, zh)` and the filters `category`, `state`, `target` (from the
/// names the summary's JSON uses), `clock` and `day` (a local date-time's `HH:MM` and its
/// `YYYY-MM-DD`).
fn environment(lang: Lang) -> Result<Environment<'static>, minijinja::Error> {
    let mut environment = Environment::new();
    // Block tags on their own lines leave no blank lines; a report ends with a newline.
    environment.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    // A misspelt field is an error, not an empty string in the report.
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        environment.add_template(name, source)?;
    }
    environment.add_function("t", move |en: String, zh: String| match lang {
        Lang::En => en,
        Lang::Zh => zh,
    });
    environment.add_filter("category", move |value: Serde<IssueCategory>| category(lang, value.0));
    environment.add_filter("state", move |value: Serde<IssueState>| state(lang, value.0));
    environment.add_filter("target", move |value: Serde<EscalationTarget>| target(lang, value.0));
    environment.add_filter("clock", |value: Serde<DateTime>| value.0.strftime("%H:%M").to_string());
    environment.add_filter("day", |value: Serde<DateTime>| value.0.date().to_string());
    Ok(environment)
}

/// Renders `summary` as `format` in `lang` (JSON has no words, so `lang` does not change it).
pub fn render(summary: &Summary, format: Format, lang: Lang) -> Result<String, RenderError> {
    let template = match format {
        Format::Json => {
            let mut out = serde_json::to_string_pretty(summary).map_err(RenderError::Json)?;
            out.push('\n');
            return Ok(out);
        }
        Format::Markdown => "report.md",
        Format::Html => "report.html",
        Format::Text => "report.txt",
    };
    let failed = |source| RenderError::Template { template, source };
    let environment = environment(lang).map_err(failed)?;
    let context = minijinja::context! {
        summary => Value::from(Serde(summary)),
        lang => Value::from(Serde(lang)),
    };
    environment.get_template(template).and_then(|compiled| compiled.render(context)).map_err(failed)
}

#[cfg(test)]
mod tests {
    // Test code: an unwrap that fails is a failed test.
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use events_schema::{EntityId, EscalationTarget, IssueCategory, SupplyItem};
    use jiff::civil::date;

    use super::*;
    use crate::{CheckCoverage, FieldNote, Gap, IssueLine, SupplyDelivery, TallyTotals};

    fn id(text: &str) -> EntityId {
        EntityId::new(text).unwrap()
    }

    /// A summary with something in every list, including text that HTML must escape.
    fn summary() -> Summary {
        let day = date(2020, 2, 20);
        Summary {
            from: day,
            to: day,
            site_id: None,
            checks: vec![CheckCoverage {
                checkpoint_id: id("longwu-main"),
                name: "Main gate".into(),
                checks: 3,
                issues_found: 1,
                expected: Some(4),
                gaps: vec![Gap { day, start: day.at(22, 30, 0, 0), end: date(2020, 2, 21).at(2, 30, 0, 0) }],
            }],
            issues: vec![IssueLine {
                issue_id: id("courier"),
                checkpoint_id: id("longwu-main"),
                category: IssueCategory::CourierCongestion,
                summary: "tricycles & vans block the gate".into(),
                state: IssueState::Escalated,
                minutes_to_first_action: Some(15),
                minutes_to_resolution: None,
                actions: vec!["cordon tape".into(), "moved the stations out".into()],
                escalated_to: vec![EscalationTarget::Subdistrict],
                verified: false,
                reopened: 0,
            }],
            raised_by_category: BTreeMap::from([(IssueCategory::CourierCongestion, 1)]),
            resolved: 0,
            still_open: 1,
            escalations: 1,
            verifications: 0,
            reopenings: 0,
            actions: 2,
            supplies: vec![SupplyDelivery {
                occurred_at_local: day.at(19, 30, 0, 0),
                delivered_by: id("cadre-1"),
                recipient: "gate staff".into(),
                purpose: Some("the rain shift".into()),
                items: vec![
                    SupplyItem { item: "herbal tea".into(), quantity: 20, unit: Some("cases".into()) },
                    SupplyItem { item: "thermometer".into(), quantity: 1, unit: None },
                ],
            }],
            quarantine_releases: 0,
            inspections: 0,
            tallies: TallyTotals { people_screened: 120, vehicles: 7, ..TallyTotals::default() },
            field_notes: vec![FieldNote {
                occurred_at_local: day.at(21, 0, 0, 0),
                author: id("cadre-1"),
                site_id: Some(id("longwu")),
                text: "<script>alert(1)</script>".into(),
            }],
            corrections: 0,
            retractions: 0,
            seal_position: 13,
            seal_hash: "ab".repeat(32),
            day_seals: vec![crate::DaySealLine {
                day: jiff::civil::date(2020, 2, 20),
                sequence: 1,
                event_count: 120,
                merkle_root: "cd".repeat(32),
                key_id: "0123456789abcdef".into(),
                global_position: 121,
            }],
            unsealed_events: 2,
        }
    }

    #[test]
    fn html_escapes_what_people_wrote() {
        for lang in [Lang::Zh, Lang::En] {
            let html = render(&summary(), Format::Html, lang).unwrap();
            assert!(html.contains("21:00 cadre-1: &lt;script&gt;alert(1)&lt;&#x2f;script&gt;</li>"), "{html}");
            assert!(!html.contains("<script>"), "{html}");
            assert!(html.contains("tricycles &amp; vans block the gate"), "{html}");
            // The page's own markup is not escaped.
            assert!(html.starts_with("<!doctype html>\n<html lang=\""), "{html}");
        }
    }

    #[test]
    fn markdown_formats_the_values() {
        let english = render(&summary(), Format::Markdown, Lang::En).unwrap();
        for line in [
            "# After-action summary 2020-02-20\n\n## Checks against schedule\n\n",
            "- Main gate (longwu-main): 3 checks of 4 scheduled, 1 found issues; gaps: 2020-02-20 22:30-02:30\n",
            "- courier congestion: 1\n",
            "First action after 15 min, resolved after - min. Actions: cordon tape; moved the stations out. Escalated to: subdistrict.",
            "- 20 cases herbal tea, 1 thermometer -> gate staff\n",
            "- 21:00 cadre-1: <script>alert(1)</script>\n",
            "- 2020-02-20 seal 1: 120 events, Merkle root cdcd",
            "signed by key 0123456789abcdef (position 121)\n- 2 events arrived after the last seal and are not sealed yet\n",
        ] {
            assert!(english.contains(line), "{line:?} in\n{english}");
        }
        let chinese = render(&summary(), Format::Markdown, Lang::Zh).unwrap();
        assert!(chinese.contains(
            "- Main gate（longwu-main）：巡查 3 次，排班 4 次，发现问题 1 次；空档：2020-02-20 22:30-02:30\n"
        ));
        assert!(chinese.contains("状态：已提级。") && chinese.contains("提级至：街道。"), "{chinese}");
        assert!(chinese.contains(&format!("该位置的链式哈希为 {}\n", "ab".repeat(32))), "{chinese}");
        assert!(chinese.contains("- 2020-02-20 第 1 次封存：120 条事件"), "{chinese}");
        assert!(chinese.ends_with("- 2 条事件在最后一次封存之后到达，尚未封存\n"), "{chinese}");
    }

    #[test]
    fn text_is_short_lines_without_markdown() {
        for lang in [Lang::Zh, Lang::En] {
            let text = render(&summary(), Format::Text, lang).unwrap();
            assert!(!text.contains('|'), "no table pipes:\n{text}");
            assert!(!text.contains("**") && !text.contains('`'), "no emphasis or code:\n{text}");
            for line in text.lines() {
                assert!(!line.is_empty(), "no blank lines:\n{text}");
                assert!(!line.starts_with('#') && !line.starts_with("- "), "no headings or list items: {line}");
            }
            assert!(text.ends_with('\n'));
        }
        let chinese = render(&summary(), Format::Text, Lang::Zh).unwrap();
        for line in [
            "工作总结 2020-02-20\n巡查 3 次，排班 4 次，发现问题 1 次\n",
            "空档：longwu-main 22:30-02:30\n",
            "新增问题 1 个：快递车辆拥堵 1\n",
            "courier（longwu-main）快递车辆拥堵：已提级，提级至街道，首次处置用时 15 分钟\n",
            "物资：20 cases herbal tea，1 thermometer -> gate staff\n",
            "21:00 cadre-1：<script>alert(1)</script>\n",
        ] {
            assert!(chinese.contains(line), "{line:?} in\n{chinese}");
        }
    }

    #[test]
    fn every_format_renders_an_empty_summary_and_renders_the_same_twice() {
        let mut empty = summary();
        empty.checks.clear();
        empty.issues.clear();
        empty.raised_by_category.clear();
        empty.supplies.clear();
        empty.field_notes.clear();
        for format in [Format::Markdown, Format::Json, Format::Html, Format::Text] {
            for lang in [Lang::Zh, Lang::En] {
                for summary in [summary(), empty.clone()] {
                    let once = render(&summary, format, lang).unwrap();
                    assert!(!once.is_empty());
                    assert_eq!(once, render(&summary, format, lang).unwrap(), "{format:?} {lang:?}");
                }
            }
        }
        assert!(render(&empty, Format::Markdown, Lang::En).unwrap().contains("## Supplies\n\n- none\n"));
        assert!(render(&empty, Format::Text, Lang::Zh).unwrap().contains("\n新增问题 0 个\n"));
    }

    #[test]
    fn a_misspelt_field_is_an_error_not_an_empty_string() {
        let environment = environment(Lang::En).unwrap();
        let context = minijinja::context! { summary => Value::from(Serde(summary())) };
        assert_eq!(environment.render_str("{{ summary.still_open }}", context.clone()).unwrap(), "1");
        let error = environment.render_str("{{ summary.stil_open }}", context).unwrap_err();
        assert_eq!(error.kind(), minijinja::ErrorKind::UndefinedError);
    }

    #[test]
    fn json_keeps_numbers_as_numbers() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&summary(), Format::Json, Lang::Zh).unwrap()).unwrap();
        assert_eq!(json["supplies"][0]["items"][0]["quantity"], 20);
        assert_eq!(json["supplies"][0]["items"][1]["unit"], serde_json::Value::Null);
        let gap = &json["checks"][0]["gaps"][0];
        assert_eq!(
            (gap["start"].as_str(), gap["end"].as_str()),
            (Some("2020-02-20T22:30:00"), Some("2020-02-21T02:30:00"))
        );
        assert_eq!(json["field_notes"][0]["occurred_at_local"], "2020-02-20T21:00:00");
    }

    #[test]
    fn formats_and_languages_have_their_short_names() {
        let formats = [
            (Format::Markdown, "md", "text/markdown; charset=utf-8"),
            (Format::Json, "json", "application/json"),
            (Format::Html, "html", "text/html; charset=utf-8"),
            (Format::Text, "text", "text/plain; charset=utf-8"),
        ];
        for (format, name, content_type) in formats {
            assert_eq!(serde_json::to_value(format).unwrap(), name);
            assert_eq!(serde_json::from_value::<Format>(name.into()).unwrap(), format);
            assert_eq!(format.content_type(), content_type);
        }
        for (lang, name) in [(Lang::Zh, "zh"), (Lang::En, "en")] {
            assert_eq!(serde_json::to_value(lang).unwrap(), name);
            assert_eq!(serde_json::from_value::<Lang>(name.into()).unwrap(), lang);
        }
        assert!(serde_json::from_value::<Format>("markdown".into()).is_err());
        assert!(serde_json::from_value::<Lang>("fr".into()).is_err());
    }
}
