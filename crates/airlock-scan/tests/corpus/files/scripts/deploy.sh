#!/usr/bin/env bash
set -euo pipefail

export AWS_DEFAULT_REGION=us-east-1
export AWS_SECRET_ACCESS_KEY={{aws-secret-access-key:2}}
export DB_PASS='{{generic-secret:7}}'
export GITHUB_SHA="${GITHUB_SHA:-$(git rev-parse HEAD)}"

echo "$DOCKER_PASSWORD" | docker login -u deploy --password-stdin registry.internal
curl -fsS -u "admin:${ADMIN_PASSWORD}" https://deploy.internal/api/releases
curl -fsS -H "Authorization: token ${GITHUB_TOKEN}" https://api.github.com/repos/acme/api
psql "postgresql://deploy:{{url-password:3}}@db.prod.internal:5432/app" -c 'select 1'
