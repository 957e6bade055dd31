"""The web app (`synapse serve`): Settings → Models and the /api JSON API behind it."""
