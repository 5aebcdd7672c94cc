import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = "{{generic-secret:1}}"

DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = ["app.internal", "localhost"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "app",
        "PASSWORD": os.environ["DB_PASSWORD"],
        "HOST": "db.prod.internal",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

EMAIL_HOST_PASSWORD = "{{generic-secret:2}}"
CSRF_COOKIE_NAME = "csrftoken"
SESSION_COOKIE_AGE = 1209600
TOKEN_EXPIRY_SECONDS = 3600
STATIC_VERSION = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
api_key = settings.get_api_key()
secret_token = get_secret("payments/token")
