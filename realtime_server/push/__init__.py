"""Push to offline devices through FCM and APNs (issue 15, part 3).

- ``message``: what a push says (provider-neutral) and what a provider answered.
- ``fcm``: Firebase Cloud Messaging HTTP v1, with the OAuth2 service-account
  JWT exchanged for an access token (cached until shortly before it expires).
- ``dispatcher``: the bounded queue the room actor feeds and the task that
  serves it: who is offline, who muted the room, what the push may say,
  retries with backoff, dead tokens removed.
"""
