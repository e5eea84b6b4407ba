//! End to end: the real homeserver, SMS bridge and escalation handler, with local doubles of
//! Twilio and of the webhook receivers (emergency services, a dashboard). A texter's first
//! SMS to closed, and expiry to retention purge.

use std::time::{Duration, Instant};

use haven_testkit::{model_double, texts_to, wait_for};
use serde_json::{json, Value};

#[path = "support/env.rs"]
mod env;
use env::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_texters_conversation_from_first_sms_to_closed() {
    let mut env = Env::start().await;
    let s = env.server.clone();
    let (ann, bo, sue) = (
        env.ann.token.clone(),
        env.bo.token.clone(),
        env.sue.token.clone(),
    );
    let queue = env.room_of_alias(&format!("#crisis-queue:{s}")).await;
    let sup = env.room_of_alias(&format!("#crisis-supervisors:{s}")).await;
    for t in [&ann, &bo, &sue, &env.ada.token] {
        env.m.accept_invites(t).await;
    }

    // Routing: the first SMS opens a room, the handler queues it.
    env.sms(TEXTER, CRISIS, "SM1", "hi, I need to talk").await;
    let room = env.conversation_rooms(1).await[0].clone();
    let c = env.state_is(&room, "queued").await;
    assert_eq!(
        (c["number"].as_u64(), c["program"].as_str()),
        (Some(1), Some("crisis"))
    );
    let pl = env
        .m
        .state(SMS_AS, &room, "m.room.power_levels")
        .await
        .unwrap();
    assert_eq!(pl["events"]["org.haven.conversation"], 100);
    assert_eq!(pl["events_default"], 10);
    env.notice(&ann, &queue, "1. #1 · risk low").await;

    // Claim; the texter's room gets its responder.
    env.m.say(&ann, &queue, "!claim 1").await;
    env.notice(&ann, &queue, "#1 is assigned to").await;
    env.m.accept_new_invites(&ann).await;
    env.state_is(&room, "assigned").await;
    // People (even the assigned responder) cannot write the conversation state.
    let (st, _) = env
        .m
        .api(
            "PUT",
            &ann,
            &format!("/rooms/{room}/state/org.haven.conversation/"),
            json!({"state": "closed"}),
        )
        .await;
    assert_eq!(st, 403);

    // Every transition the machine does not allow from here is refused with what is
    // allowed, and changes nothing; so is a command from someone without the right.
    let before = env
        .m
        .state(SMS_AS, &room, "org.haven.conversation")
        .await
        .unwrap();
    for cmd in [
        "!wrapup",
        "!resolve",
        "!close",
        "!followup 1h",
        "!accept",
        "!escalate medical",
        &format!("!transfer @bo:{s}"),
    ] {
        env.m.say(&ann, &room, cmd).await;
    }
    let refusals = || async {
        env.m
            .messages(&ann, &room)
            .await
            .iter()
            .filter(|m| {
                m["content"]["body"].as_str().is_some_and(|b| {
                    b.contains("Not possible: the conversation is assigned")
                        && b.contains("Allowed from here: the responder's first message")
                        || b.starts_with(
                            "Only the responder this conversation is being transferred to",
                        )
                })
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while refusals().await < 7 {
        assert!(Instant::now() < deadline, "not every command was refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.m.say(&sue, &sup, "!close 1").await;
    env.notice(&sue, &sup, "#1: Not possible").await;
    env.m.say(&bo, &queue, "!claim 1").await;
    env.notice(
        &bo,
        &queue,
        "#1: Not possible: the conversation is assigned",
    )
    .await;
    let after = env
        .m
        .state(SMS_AS, &room, "org.haven.conversation")
        .await
        .unwrap();
    assert_eq!(before, after, "refused commands changed nothing");
    // Commands are never texted to the texter.
    assert!(texts_to(&env.sent, TEXTER)
        .iter()
        .all(|b| !b.starts_with('!')));

    // The first-response target (1 s) is missed: supervisors hear of it.
    env.notice(&sue, &sup, "no first response from").await;
    env.m
        .say(&ann, &room, "Hi, I'm Ann. I'm here with you.")
        .await;
    env.state_is(&room, "active").await;
    env.texts(TEXTER, "I'm Ann").await;

    // Risk: an imminent message alerts supervisors within a second and tags it.
    env.sms(TEXTER, CRISIS, "SM2", "I took pills an hour ago")
        .await;
    let inbound = env.m.wait_text(&ann, &room, "took pills").await;
    let alert = env
        .notice(&sue, &sup, "Risk imminent in conversation #1")
        .await;
    let delay =
        alert["origin_server_ts"].as_u64().unwrap() - inbound["origin_server_ts"].as_u64().unwrap();
    assert!(delay < 1000, "alerted after {delay} ms");
    let c = env.conversation(&room, |c| c["risk"] == "imminent").await;
    assert!(c["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("risk:imminent")));

    // Medical escalation: record, supervisors, the on-call DM, the emergency webhook (which
    // fails twice first and is retried).
    *env.hooks.fail_path.lock().unwrap() = Some("/emergency".into());
    env.hooks.fail.store(2, std::sync::atomic::Ordering::SeqCst);
    env.m
        .say(
            &ann,
            &room,
            "!escalate medical immediate 12 Oak Street, Leeds",
        )
        .await;
    env.notice(&ann, &room, "Escalated (medical) as ESC-").await;
    env.state_is(&room, "escalated_medical").await;
    let sup_alert = env
        .notice(
            &sue,
            &sup,
            "medical escalation (immediate, 12 Oak Street, Leeds)",
        )
        .await;
    let reference = sup_alert["content"]["body"].as_str().unwrap()[5..]
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    assert!(reference.starts_with("ESC-"), "{reference}");
    wait_for("the emergency webhook delivered", || {
        env.hooks
            .all()
            .iter()
            .filter(|h| h.path == "/emergency")
            .count()
            >= 3
    })
    .await;
    let calls: Vec<_> = env
        .hooks
        .all()
        .into_iter()
        .filter(|h| h.path == "/emergency")
        .collect();
    assert_eq!(
        calls.len(),
        3,
        "two failures, then one success, nothing more"
    );
    assert!(calls.iter().all(|h| verify(h, EMERGENCY_SECRET)));
    assert_eq!(
        calls[0].header("x-haven-delivery"),
        calls[2].header("x-haven-delivery")
    );
    let call = calls[2].json();
    assert_eq!(
        (
            call["reference"].as_str(),
            call["kind"].as_str(),
            call["location"].as_str()
        ),
        (
            Some(reference.as_str()),
            Some("medical"),
            Some("12 Oak Street, Leeds")
        )
    );
    let m = env.metrics().await;
    for line in [
        "escalation_escalations_total{kind=\"medical\"} 1",
        "escalation_first_response_seconds_count 1",
        "escalation_alerts_total{kind=\"risk\"} 1",
        "escalation_alerts_total{kind=\"first_response\"} 1",
        "escalation_webhooks_total{destination=\"emergency\",outcome=\"retried\"} 2",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    let dms = env.m.accept_new_invites(&sue).await;
    assert_eq!(dms.len(), 1, "one direct room with the on-call supervisor");
    env.m.wait_text(&sue, &dms[0], &reference).await;

    // A supervisor joins read-only, and resolves.
    env.m.say(&sue, &sup, "!join 1").await;
    env.notice(&sue, &sup, "Invited to conversation #1").await;
    env.m.accept_new_invites(&sue).await;
    let (st, _) = env
        .m
        .api(
            "PUT",
            &sue,
            &format!("/rooms/{room}/send/m.room.message/sue1"),
            json!({"msgtype": "m.text", "body": "hello"}),
        )
        .await;
    assert_eq!(st, 403, "supervisors read but do not write");
    // Only responders escalate: the supervisor's command is refused, nothing changes.
    env.m.say(&sue, &sup, "!escalate 1 police").await;
    env.notice(
        &sue,
        &sup,
        "Only the assigned responder can transfer or escalate",
    )
    .await;
    env.m.say(&sue, &sup, "!resolve 1").await;
    env.notice(&sue, &sup, "resolved; conversation #1 is active again")
        .await;
    env.state_is(&room, "active").await;

    // Police escalation and back.
    env.m.say(&ann, &room, "!escalate police urgent").await;
    env.state_is(&room, "escalated_police").await;
    env.m.say(&ann, &room, "!resolve").await;
    env.state_is(&room, "active").await;

    // Transfer with a summary for the receiving responder.
    env.m
        .say(
            &ann,
            &room,
            &format!("!transfer @bo:{s} needs someone tonight"),
        )
        .await;
    env.state_is(&room, "transferred").await;
    env.m.accept_new_invites(&bo).await;
    let brief = env
        .notice(&bo, &room, "is transferring conversation #1 to you")
        .await;
    let body = brief["content"]["body"].as_str().unwrap();
    assert!(
        body.contains("needs someone tonight")
            && body.contains("Summary (offline)")
            && body.contains("I took pills"),
        "{body}"
    );
    assert!(!body.contains(TEXTER));
    env.m.say(&bo, &room, "!accept").await;
    let c = env.state_is(&room, "active").await;
    assert_eq!(c["responder"], format!("@bo:{s}"));
    let (st, _) = env
        .m
        .api(
            "PUT",
            &ann,
            &format!("/rooms/{room}/send/m.room.message/ann9"),
            json!({"msgtype": "m.text", "body": "still here"}),
        )
        .await;
    assert_eq!(st, 403, "the previous responder no longer writes");

    // Staff-only notes, tags, risk, canned responses.
    env.m.say(&bo, &room, "!note called her GP").await;
    env.notice(&sue, &sup, "Note on #1 by").await;
    env.m.say(&bo, &room, "!tag overdose").await;
    env.m.say(&bo, &room, "!risk high").await;
    env.conversation(&room, |c| {
        c["risk"] == "high" && c["tags"].as_array().unwrap().contains(&json!("overdose"))
    })
    .await;
    env.m.say(&bo, &room, "!canned hello").await;
    env.texts(TEXTER, "Hi, I'm here to listen.").await;
    assert!(
        texts_to(&env.sent, TEXTER)
            .iter()
            .all(|b| !b.contains("GP")),
        "notes never reach the texter"
    );

    // Wrap-up with the exit survey.
    env.m.say(&bo, &room, "!wrapup").await;
    env.state_is(&room, "wrap_up").await;
    env.texts(TEXTER, "How helpful was this").await;
    env.sms(TEXTER, CRISIS, "SM3", "5").await;
    env.conversation(&room, |c| c["surveys"]["exit"][0]["answer"] == "5")
        .await;

    // A follow-up that fires after the handler restarts, once.
    env.m.say(&bo, &room, "!followup 3s").await;
    env.state_is(&room, "follow_up_scheduled").await;
    env.esc = None; // SIGKILL
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.esc = Some(spawn_handler(&env.esc_cfg, &env.esc_port).await);
    env.state_is(&room, "follow_up_active").await;
    env.texts(TEXTER, "checking in").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let checkins = texts_to(&env.sent, TEXTER)
        .iter()
        .filter(|b| b.contains("checking in"))
        .count();
    assert_eq!(checkins, 1);

    env.m.say(&bo, &room, "!close").await;
    env.state_is(&room, "closed").await;
    env.m.say(&bo, &room, "!close").await;
    env.notice(&bo, &room, "Allowed from here: nothing").await;

    // Lifecycle events reached the dashboard, signed.
    let events: Vec<String> = env
        .hooks
        .all()
        .iter()
        .filter(|h| h.path == "/events")
        .map(|h| {
            assert!(verify(h, DASH_SECRET));
            h.json()["event"].as_str().unwrap().to_owned()
        })
        .collect();
    for e in [
        "conversation.created",
        "conversation.assigned",
        "conversation.message.inbound",
        "conversation.message.outbound",
        "conversation.transferred",
        "conversation.escalated",
        "conversation.tag.updated",
        "conversation.survey.completed",
        "conversation.followup.scheduled",
        "conversation.followup.triggered",
        "conversation.closed",
    ] {
        wait_for(e, || {
            env.hooks
                .all()
                .iter()
                .any(|h| h.path == "/events" && h.json()["event"] == e)
        })
        .await;
    }
    assert!(!events.is_empty());
    let m = env.metrics().await;
    // (Counters restart with the handler; the gauges are rebuilt from its records.)
    for line in [
        "escalation_conversations{state=\"closed\"} 1",
        "escalation_conversations{state=\"active\"} 0",
        "escalation_queue_depth{program=\"crisis\"} 0",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unanswered_conversations_expire_and_retention_purges_them() {
    let env = Env::start().await;
    let s = env.server.clone();
    let (bo, ada) = (&env.bo.token, &env.ada.token);
    let queue = env.room_of_alias(&format!("#youth-queue:{s}")).await;
    let sup = env.room_of_alias(&format!("#youth-supervisors:{s}")).await;
    env.m.accept_invites(bo).await;
    env.m.accept_invites(ada).await;

    env.sms(YOUNG_TEXTER, YOUTH, "SMy1", "hello?").await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.state_is(&room, "queued").await;
    // The entry survey while they wait; their first text is not taken as the answer.
    env.texts(YOUNG_TEXTER, "How old are you?").await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMy2", "15").await;
    assert_eq!(
        env.entry_survey(&room).await,
        json!([{"question": "How old are you?", "answer": "15"}])
    );

    // Nobody claims it within 3 s: expired, with a message to the texter.
    env.state_is(&room, "expired").await;
    env.texts(YOUNG_TEXTER, "no one was free").await;
    env.notice(bo, &queue, "nobody is waiting").await;
    env.m.say(bo, &queue, "!claim 1").await;
    env.notice(bo, &queue, "Not possible: the conversation is expired")
        .await;

    // Retention: only an admin; a dry run first, then the purge.
    env.m.say(bo, &queue, "!retention purge").await;
    env.notice(bo, &queue, "Only a program admin can run retention.")
        .await;
    env.m.say(ada, &sup, "!retention").await;
    env.notice(
        ada,
        &sup,
        "Retention (dry run): 1 conversation(s) would be purged:",
    )
    .await;
    assert_eq!(
        env.conversation_rooms(1).await.len(),
        1,
        "a dry run removes nothing"
    );
    env.m.say(ada, &sup, "!retention purge").await;
    let report = env
        .notice(ada, &sup, "Retention: 1 conversation(s) purged:")
        .await;
    assert!(report["content"]["body"]
        .as_str()
        .unwrap()
        .contains("#1 (youth) — ended 0 days ago"));
    assert!(
        env.m.messages(SMS_AS, &room).await.is_empty(),
        "the history is gone"
    );
    assert!(env
        .m
        .state(SMS_AS, &room, "org.haven.conversation")
        .await
        .is_none());
    assert!(env.m.joined_rooms(SMS_AS).await.is_empty());
    env.m.say(ada, &sup, "!retention").await;
    env.notice(ada, &sup, "Retention: nothing to purge.").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_assesses_risk_and_briefs_the_receiving_responder() {
    fn answer(req: &Value) -> String {
        if req.get("response_format").is_some() {
            r#"{"risk": "high"}"#.into()
        } else {
            "She lost her job this week and feels stuck; no immediate danger disclosed.".into()
        }
    }
    let (requests, base) = model_double(answer).await;
    let env = Env::start_with(&format!(
        "risk_model = true\n[escalation.model]\nbase_url = \"{base}\"\nmodel = \"m\"\n"
    ))
    .await;
    let s = env.server.clone();
    let (ann, bo, sue) = (&env.ann.token, &env.bo.token, &env.sue.token);
    let queue = env.room_of_alias(&format!("#crisis-queue:{s}")).await;
    let sup = env.room_of_alias(&format!("#crisis-supervisors:{s}")).await;
    for t in [ann, bo, sue] {
        env.m.accept_invites(t).await;
    }
    // Nothing in the lexicon; the model judges it high.
    env.sms(TEXTER, CRISIS, "SMm1", "I can't see a way forward anymore")
        .await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.notice(
        sue,
        &sup,
        "Risk high in conversation #1 (queued): assessed by the model",
    )
    .await;
    let c = env.conversation(&room, |c| c["risk"] == "high").await;
    assert!(c["tags"].as_array().unwrap().contains(&json!("risk:high")));
    let risk_req = requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.get("response_format").is_some())
        .cloned()
        .expect("a risk request");
    assert_eq!(
        risk_req["messages"][1]["content"],
        "I can't see a way forward anymore"
    );
    assert!(!risk_req.to_string().contains(TEXTER));

    env.m.say(ann, &queue, "!next").await;
    env.m.accept_new_invites(ann).await;
    env.state_is(&room, "assigned").await;
    env.m.say(ann, &room, "Hi, I'm Ann.").await;
    env.state_is(&room, "active").await;
    env.m.say(ann, &room, &format!("!transfer @bo:{s}")).await;
    env.m.accept_new_invites(bo).await;
    let brief = env
        .notice(bo, &room, "is transferring conversation #1 to you")
        .await;
    assert!(brief["content"]["body"]
        .as_str()
        .unwrap()
        .contains("Summary (model): She lost her job"));
    // The summary request carried the room's conversation, by role.
    let summary_req = requests
        .lock()
        .unwrap()
        .iter()
        .rfind(|r| r.get("response_format").is_none())
        .cloned()
        .expect("a summary request");
    let transcript = summary_req["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.contains("Texter: I can't see a way forward anymore")
            && transcript.contains("Responder: Hi, I'm Ann."),
        "{transcript}"
    );
}

/// Issue 17, item 3: with the intake bot and an entry survey both on (as in both sample
/// configurations), the texter is asked one thing at a time: the intake bot's questions,
/// then the survey. The intake bot does not take the handler for a responder, and each answer
/// is stored against its own question.
#[tokio::test(flavor = "multi_thread")]
async fn intake_comes_first_then_the_entry_survey_one_question_at_a_time() {
    let env = Env::start_opts("", true).await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMi1", "hello?").await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.texts(YOUNG_TEXTER, "What should we call you?").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !texts_to(&env.sent, YOUNG_TEXTER)
            .iter()
            .any(|t| t.contains("How old are you?")),
        "two questions at once: {:?}",
        texts_to(&env.sent, YOUNG_TEXTER)
    );
    env.sms(YOUNG_TEXTER, YOUTH, "SMi2", "Sam").await;
    env.texts(YOUNG_TEXTER, "Thanks. Someone will be with you soon.")
        .await;
    env.texts(YOUNG_TEXTER, "How old are you?").await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMi3", "I'm 16").await;
    assert_eq!(
        env.entry_survey(&room).await,
        json!([{"question": "How old are you?", "answer": "I'm 16"}])
    );
    // The intake bot finished with its own answer, not stopped by the handler's question.
    let summary = env
        .m
        .state(ESC_AS, &room, "org.haven.intake.summary")
        .await
        .unwrap_or_default();
    assert!(summary.to_string().contains("Sam"), "{summary}");
}

/// Issue 17, item 4: the entry survey counts only an answer to the question asked: once a
/// responder talks to the texter, the texter's next message is for them, not the survey.
#[tokio::test(flavor = "multi_thread")]
async fn the_entry_survey_never_takes_a_message_meant_for_the_responder() {
    let env = Env::start().await;
    let bo = &env.bo.token;
    let s = env.server.clone();
    let queue = env.room_of_alias(&format!("#youth-queue:{s}")).await;
    env.m.accept_invites(bo).await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMj1", "hello?").await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.texts(YOUNG_TEXTER, "How old are you?").await;
    env.m.say(bo, &queue, "!claim 1").await;
    env.notice(bo, &queue, "#1 is assigned to").await;
    env.m.accept_new_invites(bo).await;
    env.state_is(&room, "assigned").await;
    env.m
        .say(bo, &room, "Hi, I'm Bo. What's happening tonight?")
        .await;
    env.texts(YOUNG_TEXTER, "What's happening tonight?").await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMj2", "my dad is shouting again")
        .await;
    let c = env.conversation(&room, |c| c["state"] == "active").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c2 = env.conversation(&room, |_| true).await;
    for c in [c, c2] {
        assert_eq!(c["surveys"]["entry"], json!([]), "{}", c["surveys"]);
    }
}

/// Issue 17, item 5: a supervisor reveals a texter's number from the supervisor room (they
/// cannot write in conversation rooms): the handler relays it, the bridge checks and audits
/// it, and the one-time link opens for the supervisor only.
#[tokio::test(flavor = "multi_thread")]
async fn a_supervisor_reveals_a_number_from_the_supervisor_room() {
    let env = Env::start().await;
    let (sue, bo) = (&env.sue.token, &env.bo.token);
    let s = env.server.clone();
    let sup = env.room_of_alias(&format!("#crisis-supervisors:{s}")).await;
    env.m.accept_invites(sue).await;
    env.m.accept_invites(bo).await;
    env.sms(TEXTER, CRISIS, "SMr1", "please help").await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.state_is(&room, "queued").await;
    // A responder may not.
    let queue = env.room_of_alias(&format!("#crisis-queue:{s}")).await;
    env.m.say(bo, &queue, "!reveal 1").await;
    env.notice(bo, &queue, "Only this program's supervisors can reveal")
        .await;
    env.m.say(sue, &sup, "!reveal 1").await;
    env.notice(sue, &sup, "the one-time link is in the conversation room")
        .await;
    env.m.accept_invites(sue).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let link = loop {
        let msgs = env.m.messages(sue, &room).await;
        if let Some(url) = msgs.iter().find_map(|m| {
            let body = m["content"]["body"].as_str().unwrap_or_default();
            body.split_whitespace()
                .find(|w| w.contains("/reveal/"))
                .map(str::to_owned)
        }) {
            break url;
        }
        assert!(Instant::now() < deadline, "no reveal link: {msgs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let open = |token: &str| {
        env.m
            .http
            .get(link.clone())
            .bearer_auth(token.to_owned())
            .send()
    };
    let r = open(bo).await.unwrap();
    assert_eq!(r.status(), 403, "only the supervisor's own token opens it");
    let r = open(sue).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), TEXTER);
}

/// Issue 17, item 6: when the emergency call is given up on, the responder (in the
/// conversation room) and the supervisors are told that nobody was notified, and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_emergency_call_is_told_to_the_responder_and_the_supervisors() {
    let env = Env::start_with("webhook_max_attempts = 3\nwebhook_first_retry_ms = 100").await;
    let (ann, sue) = (env.ann.token.clone(), env.sue.token.clone());
    let s = env.server.clone();
    let queue = env.room_of_alias(&format!("#crisis-queue:{s}")).await;
    let sup = env.room_of_alias(&format!("#crisis-supervisors:{s}")).await;
    env.m.accept_invites(&ann).await;
    env.m.accept_invites(&sue).await;
    *env.hooks.fail_path.lock().unwrap() = Some("/emergency".into());
    env.hooks
        .fail
        .store(1000, std::sync::atomic::Ordering::SeqCst);
    env.sms(TEXTER, CRISIS, "SMe1", "I took too many pills")
        .await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.state_is(&room, "queued").await;
    env.m.say(&ann, &queue, "!claim 1").await;
    env.notice(&ann, &queue, "#1 is assigned to").await;
    env.m.accept_new_invites(&ann).await;
    env.state_is(&room, "assigned").await;
    env.m.say(&ann, &room, "I'm here with you.").await;
    env.state_is(&room, "active").await;
    env.m
        .say(&ann, &room, "!escalate medical immediate 12 Oak Street")
        .await;
    env.notice(&ann, &room, "Escalated (medical)").await;
    for (token, where_) in [(&ann, &room), (&sue, &sup)] {
        let n = env
            .notice(token, where_, "Emergency services were NOT notified")
            .await;
        let body = n["content"]["body"].as_str().unwrap();
        assert!(body.contains("Call emergency services directly"), "{body}");
        assert!(body.contains("12 Oak Street"), "{body}");
        assert!(!body.contains("http"), "{body}");
    }
}

/// Issue 17, item 11: once retention has purged a conversation, the texter's words (their
/// intake answer, their survey answer, their messages) and the responder's replies are gone
/// from every data directory: the homeserver's, the bridge's, the handler's and the intake
/// bot's, not only from what they answer.
#[tokio::test(flavor = "multi_thread")]
async fn purged_means_gone_from_every_disk() {
    let env = Env::start_opts("", true).await;
    let (bo, ada) = (&env.bo.token, &env.ada.token);
    let s = env.server.clone();
    let queue = env.room_of_alias(&format!("#youth-queue:{s}")).await;
    let sup = env.room_of_alias(&format!("#youth-supervisors:{s}")).await;
    env.m.accept_invites(bo).await;
    env.m.accept_invites(ada).await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMd1", "hello quillwort")
        .await;
    let room = env.conversation_rooms(1).await[0].clone();
    env.texts(YOUNG_TEXTER, "What should we call you?").await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMd2", "Zebrafinch").await;
    env.texts(YOUNG_TEXTER, "How old are you?").await;
    env.sms(YOUNG_TEXTER, YOUTH, "SMd3", "sixteen marmoset")
        .await;
    env.entry_survey(&room).await;
    env.m.say(bo, &queue, "!claim 1").await;
    env.notice(bo, &queue, "#1 is assigned to").await;
    env.m.accept_new_invites(bo).await;
    env.state_is(&room, "assigned").await;
    env.m.say(bo, &room, "Hello, the axolotl reply").await;
    env.texts(YOUNG_TEXTER, "axolotl").await;
    env.m.say(bo, &room, "!close").await;
    env.state_is(&room, "closed").await;
    let words = ["quillwort", "Zebrafinch", "marmoset", "axolotl"];
    assert!(
        words
            .iter()
            .all(|w| !haven_testkit::files_holding(env.data_dir(), w.as_bytes()).is_empty()),
        "the words are on disk before the purge"
    );
    env.m.say(ada, &sup, "!retention purge").await;
    env.notice(ada, &sup, "Retention: 1 conversation(s) purged:")
        .await;
    // The bridge and the intake bot hear of it as they are removed from the room.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<_> = words
            .iter()
            .flat_map(|w| haven_testkit::files_holding(env.data_dir(), w.as_bytes()))
            .collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let which: Vec<_> = words
                .iter()
                .filter(|w| !haven_testkit::files_holding(env.data_dir(), w.as_bytes()).is_empty())
                .collect();
            panic!("still on disk: {left:?} {which:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Issue 17 (docs: "staff invited once"): the handler invites each staff member once, not
/// again with the room's creation, nor at each start.
#[tokio::test(flavor = "multi_thread")]
async fn staff_are_invited_once() {
    let mut env = Env::start().await;
    let s = env.server.clone();
    let queue = env.room_of_alias(&format!("#crisis-queue:{s}")).await;
    let invites_of_ann = |env: &Env| {
        let (queue, s) = (queue.clone(), s.clone());
        let m = env.m.clone();
        async move {
            let (_, v) = m
                .api(
                    "GET",
                    ESC_AS,
                    &format!("/rooms/{queue}/messages?dir=f&limit=500"),
                    json!({}),
                )
                .await;
            v["chunk"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter(|e| {
                    e["type"] == "m.room.member"
                        && e["state_key"] == format!("@ann:{s}")
                        && e["content"]["membership"] == "invite"
                })
                .count()
        }
    };
    assert_eq!(invites_of_ann(&env).await, 1);
    env.esc = None;
    env.esc = Some(spawn_handler(&env.esc_cfg, &env.esc_port).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(invites_of_ann(&env).await, 1);
}
