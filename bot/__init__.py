"""campaign-bot: scheduled campaign posts to X, Bluesky and Mastodon, with reply and hashtag tracking."""

__version__ = "0.1.0"
