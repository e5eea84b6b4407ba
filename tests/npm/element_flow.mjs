// What a responder does in Element, done with matrix-js-sdk against Haven (tests/js_sdk.rs runs
// it): register, sync, create a room, invite, send, edit, react, reply in a thread, upload an
// image and fetch its thumbnail, search — with the SDK's own sync loop running, and no error.
import * as sdk from "matrix-js-sdk";

const base = process.argv[2];
const fail = (m) => { console.error("FAIL: " + m); process.exit(1); };
const check = (cond, m) => { if (!cond) fail(m); };

async function register(name) {
  const anon = sdk.createClient({ baseUrl: base });
  const r = await anon.registerRequest({ username: name, password: "pw", auth: { type: "m.login.dummy" } });
  return sdk.createClient({ baseUrl: base, accessToken: r.access_token, userId: r.user_id, deviceId: r.device_id });
}

async function started(client) {
  await new Promise((resolve, reject) => {
    client.once(sdk.ClientEvent.Sync, (state, _prev, data) => {
      if (state === "PREPARED") resolve(); else reject(new Error("sync state " + state + " " + (data?.error ?? "")));
    });
    client.startClient({ initialSyncLimit: 20, threadSupport: true });
  });
}

async function until(what, f, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail("timed out waiting for " + what);
}

const alice = await register("js_alice");
const bob = await register("js_bob");
await started(alice);
await started(bob);

const { room_id } = await alice.createRoom({ name: "Responders", invite: [bob.getUserId()] });
await until("bob's invite", () => bob.getRoom(room_id));
await bob.joinRoom(room_id);

const { event_id: msg } = await alice.sendTextMessage(room_id, "hello from the js sdk");
await alice.sendEvent(room_id, "m.room.message", {
  msgtype: "m.text", body: "* hello, edited",
  "m.new_content": { msgtype: "m.text", body: "hello, edited" },
  "m.relates_to": { rel_type: "m.replace", event_id: msg },
});
// Bob reacts and replies once his client has the message (as a person would: seeing it first;
// js-sdk mishandles a thread reply whose root its timeline does not hold yet).
await until("the message in bob's timeline", () => bob.getRoom(room_id)?.findEventById(msg));
await bob.sendEvent(room_id, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: msg, key: "👍" } });
await bob.sendEvent(room_id, "m.room.message", {
  msgtype: "m.text", body: "a reply in the thread",
  "m.relates_to": { rel_type: "m.thread", event_id: msg, is_falling_back: true, "m.in_reply_to": { event_id: msg } },
});

// Bob's client shows the edit and the thread.
const edited = await until("the edit in bob's timeline", () => {
  const ev = bob.getRoom(room_id)?.findEventById(msg);
  return ev && ev.getContent().body === "hello, edited" ? ev : null;
});
check(edited, "edit applied");
const reactions = await alice.relations(room_id, msg, "m.annotation", "m.reaction");
check(reactions.events.length === 1, "one reaction, got " + reactions.events.length);
const threads = await alice.http.authedRequest("GET", `/rooms/${encodeURIComponent(room_id)}/threads`, undefined, undefined, { prefix: "/_matrix/client/v1" });
check(threads.chunk.length === 1 && threads.chunk[0].unsigned["m.relations"]["m.thread"].count === 1, "thread listed");

// An image, and its thumbnail through authenticated media.
const png = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR4nGM4YWSEFTEMLQkAc/tLAZi7j8gAAAAASUVORK5CYII=",
  "base64");
const up = await alice.uploadContent(png, { type: "image/png", name: "dot.png" });
check(up.content_uri.startsWith("mxc://"), "upload");
await alice.sendMessage(room_id, { msgtype: "m.image", body: "dot.png", url: up.content_uri, info: { mimetype: "image/png", w: 8, h: 8 } });
const thumb = alice.mxcUrlToHttp(up.content_uri, 32, 32, "scale", false, true, true);
const t = await fetch(thumb, { headers: { Authorization: "Bearer " + alice.getAccessToken() } });
check(t.status === 200 && (t.headers.get("content-type") || "").startsWith("image/"), "thumbnail " + t.status);

// Search finds the edited text's original and the thread reply.
const found = await alice.search({ body: { search_categories: { room_events: { search_term: "thread" } } } });
check(found.search_categories.room_events.count === 1, "search count " + found.search_categories.room_events.count);

alice.stopClient();
bob.stopClient();
console.log("OK");
process.exit(0);
