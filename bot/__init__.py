"""campaign-bot: scheduled campaign posts to X, Bluesky, Mastodon, Facebook Pages and
Instagram; replies and hashtags tracked."""

__version__ = "0.1.0"
