//! Chinese and English for every word a page shows. Templates carry both languages side by
//! side, `t("Status board", "状态看板")`, so that no word can lack its translation; the
//! names of categories, states, severities and weather come from `projections::words`
//! (the reports' own words).

use events_schema::{EscalationTarget, IssueCategory, Severity, Weather};
use minijinja::value::Serde;
use minijinja::{Environment, State};
use projections::words;
use serde::Serialize;

/// A page's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// `en` or `zh` (also `zh-CN` and the like).
    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The browser's preferred language of the two (by `q`, then order); English when it
    /// names neither.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_code) else { continue };
            let q = parts
                .find_map(|param| param.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The `<html lang>` value.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The text of this language of the two.
    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        words::t(self.into(), en, zh)
    }
}

impl From<Lang> for projections::Lang {
    fn from(lang: Lang) -> projections::Lang {
        match lang {
            Lang::En => projections::Lang::En,
            Lang::Zh => projections::Lang::Zh,
        }
    }
}

/// Why the rules refused a command, in the page's language (every kind of refusal listed:
/// a new one must be given its words here).
pub fn rule_words(lang: Lang, rule: &domain::DomainError) -> String {
    use domain::DomainError as E;
    let zh = lang == Lang::Zh;
    let pick = |en: String, zh_text: String| if zh { zh_text } else { en };
    match rule {
        E::Unknown { kind, id } => pick(format!("there is no {kind} {id}"), format!("不存在{kind} {id}")),
        E::AlreadyExists { kind, id } => pick(format!("{kind} {id} already exists"), format!("{kind} {id} 已存在")),
        E::CheckpointClosed(id) => pick(format!("gate {id} is closed"), format!("卡口 {id} 已关闭")),
        E::CheckpointOpen(id) => pick(format!("gate {id} is already open"), format!("卡口 {id} 已在开放中")),
        E::IssueResolved(id) => {
            pick(format!("issue {id} is resolved: reopen it first"), format!("问题 {id} 已解决：请先重新打开"))
        }
        E::IssueNotResolved(id) => pick(format!("issue {id} is not resolved yet"), format!("问题 {id} 尚未解决")),
        E::IssueVerified(id) => {
            pick(format!("the resolution of issue {id} is already verified"), format!("问题 {id} 的解决情况已核实"))
        }
        E::RoundCompleted(id) => pick(format!("round {id} is completed"), format!("巡查轮次 {id} 已完成")),
        E::UnknownChecklistItem { round_id, item_id } => {
            pick(format!("round {round_id} has no item {item_id}"), format!("巡查轮次 {round_id} 没有检查项 {item_id}"))
        }
        E::ItemAlreadyTicked { round_id, item_id } => pick(
            format!("item {item_id} of round {round_id} is already ticked"),
            format!("巡查轮次 {round_id} 的检查项 {item_id} 已勾选"),
        ),
        E::TaskCompleted(id) => pick(format!("task {id} is already completed"), format!("任务 {id} 已完成")),
        E::EventRetracted(id) => pick(format!("event {id} was retracted"), format!("记录 {id} 已被撤回")),
        E::ReplacementTypeMismatch { target, replacement } => pick(
            format!("a {target} cannot be replaced by a {replacement}"),
            format!("{target} 不能被 {replacement} 替换"),
        ),
        E::NotCorrectable(kind) => {
            pick(format!("a {kind} cannot be corrected or retracted"), format!("{kind} 不能更正或撤回"))
        }
        E::InTheFuture { .. } => pick(
            "it cannot have happened in the future (check the phone's clock)".into(),
            "时间不能晚于现在（请检查手机时间）".into(),
        ),
        E::EmptyText(what) => pick(format!("{what} is empty"), format!("{what} 不能为空")),
        E::CheckIntervalOutOfRange(minutes) => pick(
            format!("the check interval must be 1 to 1,440 minutes, not {minutes}"),
            format!("巡查间隔须为 1 至 1440 分钟，而不是 {minutes}"),
        ),
        E::EmptyScheduleHours => pick("the schedule's hours are empty".into(), "排班时段为空".into()),
        E::TallyPeriodReversed => {
            pick("the tally's period ends before it starts".into(), "统计时段的结束早于开始".into())
        }
        E::EmptyChecklist => {
            pick("a round needs at least one checklist item".into(), "巡查轮次至少需要一个检查项".into())
        }
        E::DuplicateChecklistItem(id) => {
            pick(format!("checklist item {id} appears twice"), format!("检查项 {id} 重复"))
        }
        E::NoticeWithoutDeliverer => {
            pick("a notice is delivered by at least one person".into(), "通知至少需要一名送达人".into())
        }
        E::SuppliesWithoutItems => {
            pick("supplies need at least one item with a quantity".into(), "物资至少需要一项及数量".into())
        }
        E::CorrectionOfAnotherEntity { target_stream } => pick(
            format!("a correction of an event of {target_stream} must be about the same thing"),
            format!("对 {target_stream} 的更正必须针对同一对象"),
        ),
        E::SealRecordedByHand => {
            pick("day seals are computed, not recorded by hand".into(), "日封存由系统生成，不能手工记录".into())
        }
    }
}

/// The page's language, from the template context (`page.lang`).
fn lang_in(state: &State) -> projections::Lang {
    let lang = state.lookup("page").and_then(|page| page.get_attr("lang").ok());
    match lang.as_ref().and_then(|lang| lang.as_str()) {
        Some("zh") => projections::Lang::Zh,
        _ => projections::Lang::En,
    }
}

/// `t(en, zh)` and the word filters, reading the page's language.
pub fn register(templates: &mut Environment<'static>) {
    // A form's value sent back (`""` when it was not sent).
    templates.add_function("sent", |values: minijinja::Value, name: String| {
        values
            .get_item(&minijinja::Value::from(name))
            .ok()
            .filter(|value| !value.is_undefined() && !value.is_none())
            .map(|value| value.to_string())
            .unwrap_or_default()
    });
    templates.add_function("t", |state: &State, en: String, zh: String| match lang_in(state) {
        projections::Lang::En => en,
        projections::Lang::Zh => zh,
    });
    templates
        .add_filter("category", |state: &State, value: Serde<IssueCategory>| words::category(lang_in(state), value.0));
    templates.add_filter("severity", |state: &State, value: Serde<Severity>| words::severity(lang_in(state), value.0));
    templates.add_filter("issue_state", |state: &State, value: Serde<projections::IssueState>| {
        words::state(lang_in(state), value.0)
    });
    templates
        .add_filter("target", |state: &State, value: Serde<EscalationTarget>| words::target(lang_in(state), value.0));
    templates.add_filter("weather", |state: &State, value: Serde<Weather>| words::weather(lang_in(state), value.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_first_choice_decides() {
        assert_eq!(Lang::from_accept_language(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-GB,en;q=0.9,zh;q=0.8")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("fr-FR,zh;q=0.5,en;q=0.4")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en;q=0.2, zh-TW;q=0.7")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("zh;q=0")), Lang::En);
        assert_eq!(Lang::from_accept_language(None), Lang::En);
    }

    #[test]
    fn a_refusal_is_told_in_the_pages_language() {
        let rule = domain::DomainError::CheckpointClosed(events_schema::EntityId::new("longwu-main").unwrap());
        assert_eq!(rule_words(Lang::En, &rule), "gate longwu-main is closed");
        assert_eq!(rule_words(Lang::Zh, &rule), "卡口 longwu-main 已关闭");
    }

    #[test]
    fn codes_round_trip() {
        for lang in [Lang::En, Lang::Zh] {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("zh_CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_code("de"), None);
    }
}
