// A third-party appservice built with matrix-bot-sdk: it registers its bot, joins rooms it
// is invited to and answers "!ping" with "pong from matrix-bot-sdk". It reports what it
// does as JSON lines on stdout for the Rust test that starts it.
//
// usage: node bot.js <homeserver_url> <server_name> <port> <as_token> <hs_token>
// <port> is a number, or fd:N for a listening socket the test started it with (it holds the
// port, so nothing else can take it before the bot listens).
const { Appservice, SimpleRetryJoinStrategy, LogService, LogLevel } = require("matrix-bot-sdk");

const [hsUrl, serverName, port, asToken, hsToken] = process.argv.slice(2);
LogService.setLevel(LogLevel.ERROR);

const appservice = new Appservice({
  port: /^fd:\d+$/.test(port) ? { fd: Number(port.slice(3)) } : Number(port),
  bindAddress: "127.0.0.1",
  homeserverName: serverName,
  homeserverUrl: hsUrl,
  registration: {
    id: "sdkbot",
    as_token: asToken,
    hs_token: hsToken,
    sender_localpart: "sdkbot",
    "de.sorunome.msc2409.push_ephemeral": true,
    namespaces: { users: [{ exclusive: true, regex: `@sdkbot_.*:${serverName}` }], rooms: [], aliases: [] },
  },
  joinStrategy: new SimpleRetryJoinStrategy(),
});

const report = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

appservice.on("room.invite", async (roomId, event) => {
  if (event.state_key !== appservice.botUserId) return;
  await appservice.botIntent.joinRoom(roomId);
  report({ joined: roomId });
});

appservice.on("room.message", async (roomId, event) => {
  report({ message: event.content && event.content.body, sender: event.sender });
  if (event.sender === appservice.botUserId) return;
  if (event.content && event.content.body === "!ping") {
    await appservice.botIntent.sendText(roomId, "pong from matrix-bot-sdk");
    report({ replied: roomId });
  }
});

appservice.on("ephemeral.event", (event) => {
  report({ ephemeral: event.type, room: event.room_id });
});

appservice.begin().then(async () => {
  await appservice.botIntent.ensureRegistered();
  report({ ready: appservice.botUserId });
}).catch((e) => {
  report({ error: String(e) });
  process.exit(1);
});
