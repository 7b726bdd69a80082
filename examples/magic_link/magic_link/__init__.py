"""Sign in with a magic link: a worked example of a Portcullis authenticator type (docs/extending.md)."""
