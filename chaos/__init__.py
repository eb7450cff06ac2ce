"""`make chaos`: a day of calls replayed through the whole local stack while its parts are
killed and its SMS provider misbehaves; then every text is checked against an oracle."""
