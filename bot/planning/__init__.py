"""When each queue fires and which post each slot sends, within each account's limits. Pure."""
