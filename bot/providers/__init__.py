"""The providers: one module each, each exporting a `plugin` (see `bot.providers.plugin`) that
`bot.plugins` finds through its entry point. The seam they share is `bot.providers.base`."""
