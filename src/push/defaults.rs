//! The server's default push rules: the spec's current set (ruma's) plus the three mention
//! rules the spec deprecated in v1.7 but Synapse still ships and clients still look for
//! (Element reads `.m.rule.contains_display_name` and `.m.rule.roomnotif` for its
//! notification settings). They only match events without `m.mentions` — ruma's evaluator
//! disables them when the property is present — so a current client's explicit mentions
//! decide, and an old client's plain-text mention still highlights.

#![allow(deprecated)] // the legacy rule IDs are deprecated in ruma for the same reason

use ruma::{
    power_levels::NotificationPowerLevelsKey,
    push::{
        Action, ConditionalPushRule, ConditionalPushRuleInit, EventMatchConditionData,
        HighlightTweakValue, PatternedPushRule, PatternedPushRuleInit, PredefinedContentRuleId,
        PredefinedOverrideRuleId, PushCondition, Ruleset,
        SenderNotificationPermissionConditionData, SoundTweakValue, Tweak,
    },
    UserId,
};

/// The default rules for `user`, in Synapse's order: each legacy override rule right after
/// the `m.mentions` rule that replaced it.
pub fn server_default(user: &UserId) -> Ruleset {
    let mut rules = Ruleset::server_default(user);
    let overrides = std::mem::take(&mut rules.override_);
    rules.override_ = overrides
        .into_iter()
        .flat_map(|rule| {
            let legacy = if rule.rule_id == PredefinedOverrideRuleId::IsUserMention.as_str() {
                Some(contains_display_name())
            } else if rule.rule_id == PredefinedOverrideRuleId::IsRoomMention.as_str() {
                Some(room_notif())
            } else {
                None
            };
            std::iter::once(rule).chain(legacy)
        })
        .collect();
    rules.content.insert(contains_user_name(user));
    rules
}

/// Brings a stored rule set up to the current defaults (rules added since it was saved),
/// keeping the user's own rules and what they changed in the default ones.
pub fn upgrade(mut stored: Ruleset, user: &UserId) -> Ruleset {
    stored.update_with_server_default(server_default(user));
    stored
}

fn mention_actions(sound: bool) -> Vec<Action> {
    let mut actions = vec![Action::Notify];
    if sound {
        actions.push(Action::SetTweak(Tweak::Sound(SoundTweakValue::Default)));
    }
    actions.push(Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes)));
    actions
}

/// `.m.rule.contains_display_name`: the body names the user's display name in the room.
fn contains_display_name() -> ConditionalPushRule {
    ConditionalPushRuleInit {
        rule_id: PredefinedOverrideRuleId::ContainsDisplayName
            .as_str()
            .to_owned(),
        default: true,
        enabled: true,
        conditions: vec![PushCondition::ContainsDisplayName],
        actions: mention_actions(true),
    }
    .into()
}

/// `.m.rule.roomnotif`: "@room" from someone allowed to notify the whole room.
fn room_notif() -> ConditionalPushRule {
    ConditionalPushRuleInit {
        rule_id: PredefinedOverrideRuleId::RoomNotif.as_str().to_owned(),
        default: true,
        enabled: true,
        conditions: vec![
            PushCondition::EventMatch(EventMatchConditionData::new(
                "content.body".to_owned(),
                "@room".to_owned(),
            )),
            PushCondition::SenderNotificationPermission(
                SenderNotificationPermissionConditionData::new(NotificationPowerLevelsKey::Room),
            ),
        ],
        actions: mention_actions(false),
    }
    .into()
}

/// `.m.rule.contains_user_name`: the body names the user's localpart.
fn contains_user_name(user: &UserId) -> PatternedPushRule {
    PatternedPushRuleInit {
        rule_id: PredefinedContentRuleId::ContainsUserName
            .as_str()
            .to_owned(),
        default: true,
        enabled: true,
        pattern: user.localpart().to_owned(),
        actions: mention_actions(true),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_rules_sit_after_the_rules_that_replaced_them() {
        let user = ruma::user_id!("@alice:example.org");
        let r = server_default(user);
        let ids: Vec<&str> = r.override_.iter().map(|r| r.rule_id.as_str()).collect();
        let at = |id: &str| ids.iter().position(|x| *x == id).expect(id);
        assert_eq!(
            at(".m.rule.contains_display_name"),
            at(".m.rule.is_user_mention") + 1
        );
        assert_eq!(at(".m.rule.roomnotif"), at(".m.rule.is_room_mention") + 1);
        assert!(r
            .content
            .iter()
            .any(|c| c.rule_id == ".m.rule.contains_user_name" && c.pattern == "alice"));
        // A rule set saved before the legacy rules existed gains them, keeping its changes.
        let mut old = Ruleset::server_default(user);
        old.set_enabled(ruma::push::RuleKind::Override, ".m.rule.master", true)
            .expect("master exists");
        let up = upgrade(old, user);
        assert!(up
            .override_
            .iter()
            .any(|r| r.rule_id == ".m.rule.roomnotif"));
        assert!(up
            .override_
            .iter()
            .any(|r| r.rule_id == ".m.rule.master" && r.enabled));
    }
}
