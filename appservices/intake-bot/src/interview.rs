//! The offline interviewer: a conversation policy over [`understand`]. It asks one or two
//! questions at a time about what is still unknown, reads each answer with the question it
//! answers, applies corrections in the order said, rephrases a question once and then moves
//! on, stops when the person says "that's all", finishes with a summary they can correct, and
//! keeps listening for corrections afterwards. It replies in Spanish to someone writing in
//! Spanish. Deterministic: the same messages always give the same replies and profile.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    profile::{and_list, day_name, language_name, order_days, order_times, Profile},
    understand::{self, Change, Field, Firmness, Reading},
};

pub use crate::understand::Slot;

/// The language the bot speaks to this person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Es,
}

/// Each question in two wordings: the second is used the one time it is asked again.
fn question(slot: Slot, nth: u8, lang: Lang) -> &'static str {
    let second = nth > 0;
    match (lang, slot, second) {
        (Lang::En, Slot::Skills, false) => "What skills or experience would you bring (for example legal, medical, driving, languages, listening)?",
        (Lang::En, Slot::Skills, true) => "Is there anything you're good at or have done before — a job, a trade, a hobby — that you'd like to use here?",
        (Lang::En, Slot::Languages, false) => "Which languages do you speak?",
        (Lang::En, Slot::Languages, true) => "What languages are you comfortable talking in, even a little?",
        (Lang::En, Slot::Availability, false) => "When are you usually free — which days, and mornings, afternoons, evenings or nights?",
        (Lang::En, Slot::Availability, true) => "Which days of the week suit you best, and what time of day?",
        (Lang::En, Slot::Location, false) => "Where are you based, and would you be willing to travel?",
        (Lang::En, Slot::Location, true) => "Which town or area are you in?",
        (Lang::En, Slot::Travel, _) => "Would you be willing to travel to help?",
        (Lang::En, Slot::Causes, false) => "Which causes matter most to you (housing, immigration, mental health, youth...)?",
        (Lang::En, Slot::Causes, true) => "Is there a group of people or a kind of work you'd most like to help with?",
        (Lang::Es, Slot::Skills, false) => "¿Qué habilidades o experiencia aportarías (por ejemplo legal, médica, conducir, idiomas, escuchar)?",
        (Lang::Es, Slot::Skills, true) => "¿Hay algo que sepas hacer bien o que hayas hecho antes —un trabajo, un oficio, un pasatiempo— que quieras aportar?",
        (Lang::Es, Slot::Languages, false) => "¿Qué idiomas hablas?",
        (Lang::Es, Slot::Languages, true) => "¿En qué idiomas te sientes cómodo hablando, aunque sea un poco?",
        (Lang::Es, Slot::Availability, false) => "¿Cuándo sueles estar libre: qué días, y por la mañana, la tarde o la noche?",
        (Lang::Es, Slot::Availability, true) => "¿Qué días de la semana te vienen mejor, y a qué hora del día?",
        (Lang::Es, Slot::Location, false) => "¿Dónde vives, y podrías desplazarte?",
        (Lang::Es, Slot::Location, true) => "¿En qué ciudad o zona estás?",
        (Lang::Es, Slot::Travel, _) => "¿Podrías desplazarte para ayudar?",
        (Lang::Es, Slot::Causes, false) => "¿Qué causas te importan más (vivienda, inmigración, salud mental, juventud...)?",
        (Lang::Es, Slot::Causes, true) => "¿Hay algún grupo de personas o tipo de trabajo con el que te gustaría ayudar más?",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interview {
    pub profile: Profile,
    pub exchanges: u32,
    /// Exchanges after which the interview ends even with gaps.
    pub max_exchanges: u32,
    /// How many times each question has been asked.
    #[serde(default)]
    pub asked: BTreeMap<Slot, u8>,
    /// What the last message asked: how a short answer ("Fargo.", "no") is read.
    #[serde(default)]
    pub last_asked: Vec<Slot>,
    /// Questions not asked again: declined, or asked twice without an answer.
    #[serde(default)]
    pub settled: BTreeSet<Slot>,
    #[serde(default)]
    pub lang: Lang,
    /// The location came from "I'm from ...", which a firmer statement replaces.
    #[serde(default)]
    pub location_weak: bool,
    /// Replies after completion, to vary them.
    #[serde(default)]
    pub later: u32,
}

/// The bot's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub reply: String,
    /// The profile changed and should be written again.
    pub changed: bool,
}

impl Interview {
    pub fn new(max_exchanges: u32) -> Self {
        Self {
            profile: Profile::default(),
            exchanges: 0,
            max_exchanges,
            asked: BTreeMap::new(),
            last_asked: Vec::new(),
            settled: BTreeSet::new(),
            lang: Lang::En,
            location_weak: false,
            later: 0,
        }
    }

    /// The first message: who the bot is, and the first two questions.
    pub fn greeting(&mut self) -> String {
        let questions = self.ask(&[Slot::Skills, Slot::Languages]);
        format!(
            "Hi, and welcome! I'm the intake assistant. A few quick questions help us match you with the right people and shifts (puedes responder en español). {questions}"
        )
    }

    /// What is still unknown and worth asking, in the order asked.
    fn missing(&self) -> Vec<Slot> {
        let mut gaps = self.gaps();
        gaps.retain(|s| !self.settled.contains(s));
        gaps
    }

    /// What is still unknown, asked or not.
    fn gaps(&self) -> Vec<Slot> {
        let p = &self.profile;
        [
            (Slot::Skills, p.skills.is_empty()),
            (Slot::Languages, p.languages.is_empty()),
            (
                Slot::Availability,
                p.availability.days.is_empty() && p.availability.times.is_empty(),
            ),
            (Slot::Location, p.location.is_none()),
            (Slot::Causes, p.causes.is_empty()),
        ]
        .into_iter()
        .filter(|(_, gap)| *gap)
        .map(|(s, _)| s)
        .collect()
    }

    /// Words the questions for `slots`, counts them as asked, and remembers them as the
    /// context of the next answer.
    fn ask(&mut self, slots: &[Slot]) -> String {
        let mut context = Vec::new();
        let mut text = Vec::new();
        for s in slots {
            let nth = self.asked.get(s).copied().unwrap_or(0);
            text.push(question(*s, nth, self.lang));
            *self.asked.entry(*s).or_default() += 1;
            context.push(*s);
            if *s == Slot::Location && nth == 0 {
                *self.asked.entry(Slot::Travel).or_default() += 1;
                context.push(Slot::Travel);
            }
        }
        // Travel, asked with the place before and still open, may be answered with it now
        // ("Lincoln. Sure!").
        if context.contains(&Slot::Location)
            && self.asked.contains_key(&Slot::Travel)
            && self.profile.willing_to_travel.is_none()
            && !context.contains(&Slot::Travel)
        {
            context.push(Slot::Travel);
        }
        self.last_asked = context;
        text.join(" ")
    }

    /// Applies what a message says, in order. Returns whether the profile changed.
    fn absorb(&mut self, reading: &Reading) -> bool {
        let before = self.profile.clone();
        for change in &reading.changes {
            match change {
                Change::Add(field, v) => {
                    let list = self.list(*field);
                    if !list.contains(v) {
                        list.push(v.clone());
                    }
                }
                Change::Remove(field, v) => self.list(*field).retain(|x| x != v),
                Change::Only(field, vs) => *self.list(*field) = vs.clone(),
                Change::Location(place, Firmness::Firm) => {
                    self.profile.location = Some(place.clone());
                    self.location_weak = false;
                }
                Change::Location(place, Firmness::Weak) => {
                    if self.profile.location.is_none() || self.location_weak {
                        self.profile.location = Some(place.clone());
                        self.location_weak = true;
                    }
                }
                Change::Travel(yes) => self.profile.willing_to_travel = Some(*yes),
            }
        }
        let p = &mut self.profile;
        p.availability.days = order_days(p.availability.days.drain(..));
        p.availability.times = order_times(p.availability.times.drain(..));
        for list in [&mut p.skills, &mut p.languages, &mut p.causes] {
            list.sort();
            list.dedup();
        }
        p.summarise();
        self.profile != before
    }

    fn list(&mut self, field: Field) -> &mut Vec<String> {
        let p = &mut self.profile;
        match field {
            Field::Skills => &mut p.skills,
            Field::Languages => &mut p.languages,
            Field::Days => &mut p.availability.days,
            Field::Times => &mut p.availability.times,
            Field::Causes => &mut p.causes,
        }
    }

    /// Takes the profile a model wrote (already normalised): the model asked its own
    /// questions, so no offline question is pending.
    pub fn adopt(&mut self, profile: Profile) {
        self.profile = profile;
        self.last_asked.clear();
    }

    /// Takes the person's message and says what to answer.
    pub fn answer(&mut self, text: &str) -> Turn {
        // After the summary, an answer to a question left open still counts ("Veterans").
        let context = if self.profile.complete {
            self.gaps()
        } else {
            self.last_asked.clone()
        };
        let reading = understand::read(text, &context);
        if let Some(es) = reading.spanish {
            self.lang = if es { Lang::Es } else { Lang::En };
        }
        let changed = self.absorb(&reading);
        if self.profile.complete {
            return self.after_completion(changed);
        }
        self.exchanges += 1;
        // A question asked and still unanswered is not asked a third time; one declined is
        // not asked again at all.
        let missing = self.missing();
        let asked = std::mem::take(&mut self.last_asked);
        // "not sure" to two questions answers the first one still open.
        let unsaid = reading
            .declined_unsaid
            .then(|| asked.iter().find(|s| missing.contains(s)).copied())
            .flatten();
        for s in asked {
            let times = self.asked.get(&s).copied().unwrap_or(0);
            let declined = reading.declined.contains(&s) || unsaid == Some(s);
            if missing.contains(&s) && (declined || times >= 2) {
                self.settled.insert(s);
            }
        }
        let missing = self.missing();
        if reading.finished || missing.is_empty() || self.exchanges >= self.max_exchanges {
            return self.finish();
        }
        let mut next: Vec<Slot> = missing.into_iter().take(2).collect();
        // Travel, if the place was given unasked: once, alongside another question.
        if self.profile.location.is_some()
            && self.profile.willing_to_travel.is_none()
            && !self.asked.contains_key(&Slot::Travel)
        {
            next.push(Slot::Travel);
        }
        let questions = self.ask(&next);
        let declined = !reading.declined.is_empty() || reading.declined_unsaid;
        let ack = match (changed, declined, self.lang) {
            (true, _, Lang::En) => ["Thanks, noted.", "Great, thank you.", "Got it, thanks."]
                [self.exchanges as usize % 3],
            (true, _, Lang::Es) => [
                "Gracias, anotado.",
                "Perfecto, gracias.",
                "Entendido, gracias.",
            ][self.exchanges as usize % 3],
            (false, true, Lang::En) => "No problem.",
            (false, true, Lang::Es) => "No pasa nada.",
            (false, false, _) => "",
        };
        let reply = if ack.is_empty() {
            questions
        } else {
            format!("{ack} {questions}")
        };
        Turn { reply, changed }
    }

    /// Ends the interview with a summary the person can correct.
    fn finish(&mut self) -> Turn {
        self.profile.complete = true;
        self.last_asked.clear();
        let summary = self.describe();
        let reply = match self.lang {
            Lang::En => format!(
                "Thank you — that's everything I need. Here's what I noted: {summary} Is that right? If anything is wrong or changes later, just tell me here."
            ),
            Lang::Es => format!(
                "Gracias, eso es todo lo que necesito. Esto es lo que anoté: {summary} ¿Es correcto? Si algo está mal o cambia más adelante, dímelo aquí."
            ),
        };
        Turn {
            reply,
            changed: true,
        }
    }

    /// After the summary: corrections are applied and confirmed; anything else is
    /// acknowledged, differently each time, without asking again.
    fn after_completion(&mut self, changed: bool) -> Turn {
        self.later += 1;
        let reply = if changed {
            match self.lang {
                Lang::En => format!("Thanks, I've updated your profile: {}", self.describe()),
                Lang::Es => format!("Gracias, he actualizado tu perfil: {}", self.describe()),
            }
        } else {
            let i = self.later as usize % 3;
            match self.lang {
                Lang::En => [
                    "Thanks! Your profile is complete; tell me if anything changes.",
                    "You're all set. If anything changes, just tell me here.",
                    "Thank you! I'll keep your profile as it is.",
                ][i]
                    .to_owned(),
                Lang::Es => [
                    "¡Gracias! Tu perfil está completo; avísame si algo cambia.",
                    "Todo listo. Si algo cambia, dímelo aquí.",
                    "¡Gracias! Dejo tu perfil como está.",
                ][i]
                    .to_owned(),
            }
        };
        Turn { reply, changed }
    }

    /// The profile in the person's language.
    fn describe(&self) -> String {
        match self.lang {
            Lang::En => {
                let text = &self.profile.searchable_text;
                if text.is_empty() {
                    "nothing yet.".to_owned()
                } else {
                    text.clone()
                }
            }
            Lang::Es => describe_es(&self.profile),
        }
    }
}

/// The summary in Spanish (languages and days by their Spanish names where known).
fn describe_es(p: &Profile) -> String {
    const DIAS: [(&str, &str); 7] = [
        ("mon", "lunes"),
        ("tue", "martes"),
        ("wed", "miércoles"),
        ("thu", "jueves"),
        ("fri", "viernes"),
        ("sat", "sábado"),
        ("sun", "domingo"),
    ];
    const FRANJAS: [(&str, &str); 4] = [
        ("morning", "mañana"),
        ("afternoon", "tarde"),
        ("evening", "noche"),
        ("night", "madrugada"),
    ];
    const IDIOMAS: [(&str, &str); 8] = [
        ("en", "inglés"),
        ("es", "español"),
        ("fr", "francés"),
        ("pt", "portugués"),
        ("de", "alemán"),
        ("it", "italiano"),
        ("zh", "chino"),
        ("ar", "árabe"),
    ];
    let name = |table: &[(&str, &str)], code: &str, fallback: String| {
        table
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| n.to_string())
            .unwrap_or(fallback)
    };
    /// The canonical skills and causes in Spanish; phrases the person said stay as said.
    const TERMINOS: [(&str, &str); 25] = [
        ("legal", "legal"),
        ("medical", "medicina"),
        ("driving", "conducir"),
        ("translation", "traducción"),
        ("counseling", "orientación y escucha"),
        ("cooking", "cocina"),
        ("teaching", "enseñanza"),
        ("tech", "tecnología"),
        ("accounting", "contabilidad"),
        ("childcare", "cuidado infantil"),
        ("construction", "construcción"),
        ("admin", "administración"),
        ("sign language", "lengua de señas"),
        ("housing", "vivienda"),
        ("immigration", "inmigración"),
        ("mental health", "salud mental"),
        ("domestic violence", "violencia doméstica"),
        ("food security", "seguridad alimentaria"),
        ("youth", "juventud"),
        ("elders", "personas mayores"),
        ("lgbtq+", "LGBTQ+"),
        ("addiction recovery", "recuperación de adicciones"),
        ("environment", "medio ambiente"),
        ("education", "educación"),
        ("veterans", "veteranos"),
    ];
    let terms = |list: &[String]| -> String {
        let named: Vec<String> = list.iter().map(|t| name(&TERMINOS, t, t.clone())).collect();
        and_list(&named, "y")
    };
    let mut parts = Vec::new();
    if !p.skills.is_empty() {
        parts.push(format!("Habilidades: {}.", terms(&p.skills)));
    }
    if !p.languages.is_empty() {
        let l: Vec<String> = p
            .languages
            .iter()
            .map(|c| name(&IDIOMAS, c, language_name(c)))
            .collect();
        parts.push(format!("Idiomas: {}.", and_list(&l, "y")));
    }
    if !p.availability.days.is_empty() || !p.availability.times.is_empty() {
        let d: Vec<String> = p
            .availability
            .days
            .iter()
            .map(|c| name(&DIAS, c, day_name(c).to_owned()))
            .collect();
        let t: Vec<String> = p
            .availability
            .times
            .iter()
            .map(|c| name(&FRANJAS, c, c.clone()))
            .collect();
        let (d, t) = (and_list(&d, "y"), and_list(&t, "o"));
        parts.push(match (d.is_empty(), t.is_empty()) {
            (false, false) => format!("Disponible: {d} ({t})."),
            (false, true) => format!("Disponible: {d}."),
            _ => format!("Disponible: {t}."),
        });
    }
    if let Some(l) = &p.location {
        parts.push(format!("Vive en {l}."));
    }
    match p.willing_to_travel {
        Some(true) => parts.push("Puede desplazarse.".into()),
        Some(false) => parts.push("Prefiere no desplazarse.".into()),
        None => {}
    }
    if !p.causes.is_empty() {
        parts.push(format!("Le importan: {}.", terms(&p.causes)));
    }
    if parts.is_empty() {
        "nada todavía.".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_interview_fills_the_profile_and_takes_corrections() {
        let mut i = Interview::new(8);
        assert!(i.greeting().contains("skills"));
        let t = i.answer("I'm a nurse and I speak English and Spanish");
        assert!(t.changed && t.reply.contains("free"), "{}", t.reply);
        let t = i.answer("Weekday evenings mostly. I live in Oakland and I can travel.");
        assert!(t.changed && t.reply.contains("causes"), "{}", t.reply);
        let t = i.answer("Mental health and housing");
        assert!(
            i.profile.complete && t.reply.starts_with("Thank you"),
            "{}",
            t.reply
        );
        let p = &i.profile;
        assert_eq!(p.skills, vec!["medical"]);
        assert_eq!(p.languages, vec!["en", "es"]);
        assert_eq!(p.availability.days, vec!["mon", "tue", "wed", "thu", "fri"]);
        assert_eq!(p.availability.times, vec!["evening"]);
        assert_eq!(p.location.as_deref(), Some("Oakland"));
        assert_eq!(p.willing_to_travel, Some(true));
        assert_eq!(p.causes, vec!["housing", "mental health"]);
        assert!(p.searchable_text.contains("Oakland"));

        // "actually I'm only free weekends" replaces the days.
        let t = i.answer("Actually I'm only free weekends");
        assert!(t.changed && t.reply.contains("updated"));
        assert_eq!(i.profile.availability.days, vec!["sat", "sun"]);
        assert_eq!(i.profile.availability.times, vec!["evening"]);
    }

    #[test]
    fn a_question_is_rephrased_once_then_dropped() {
        let mut i = Interview::new(10);
        let greeting = i.greeting();
        let mut said = vec![greeting];
        for _ in 0..6 {
            said.push(i.answer("hmm").reply);
        }
        assert!(i.profile.complete, "{said:#?}");
        let questions: Vec<&str> = said
            .iter()
            .flat_map(|s| s.split_inclusive('?'))
            .filter(|q| q.ends_with('?'))
            .collect();
        let mut unique = questions.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), questions.len(), "{said:#?}");
    }

    #[test]
    fn it_stops_when_told_and_after_the_configured_exchanges() {
        let mut i = Interview::new(10);
        i.greeting();
        let t = i.answer("that's all");
        assert!(i.profile.complete && t.reply.starts_with("Thank you"));
        let mut i = Interview::new(2);
        i.greeting();
        i.answer("hello");
        let t = i.answer("not sure");
        assert!(i.profile.complete && t.reply.starts_with("Thank you"));
    }

    #[test]
    fn spanish_is_answered_in_spanish() {
        let mut i = Interview::new(8);
        i.greeting();
        let t = i.answer("Hola, soy enfermera y hablo español e inglés");
        assert!(t.reply.contains("¿Cuándo"), "{}", t.reply);
        assert_eq!(i.profile.skills, vec!["medical"]);
    }
}
