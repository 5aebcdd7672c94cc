"""Fixtures for unit tests; none of these are real credentials."""

API_KEY = "test_key_123"
FAKE_TOKEN = "fake-token-for-tests"
PASSWORD = "correct-horse-battery-staple"
SECRET = "not-a-real-secret"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
USER_ID = "a3bb189e-8bf9-3888-9912-ace4e6543002"
IMAGE = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
token_kwargs = dict(access_token=None, refresh_token=None)
