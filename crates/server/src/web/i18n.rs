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
    fn codes_round_trip() {
        for lang in [Lang::En, Lang::Zh] {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("zh_CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_code("de"), None);
    }
}
