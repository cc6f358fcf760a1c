"""campaign-bot: scheduled campaign posts to X, Bluesky, Mastodon and Facebook; replies and
hashtags tracked."""

__version__ = "0.1.0"
