# The list service (credit-check serve) for N stateless instances on PostgreSQL.
# Build: docker build -t credit-check .   Run: see deploy/compose.yaml and docs/deploy.md.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY credit_check ./credit_check
COPY adapters ./adapters
RUN pip install --no-cache-dir ".[server,postgres]" \
    && useradd --system --uid 10001 --home-dir /nonexistent credit-check
USER credit-check
EXPOSE 8600
# The database URL, the key files and the admin key come from the environment
# (CREDIT_CHECK_SANDBOX_DB, CREDIT_CHECK_SIGNING_KEY_FILE, CREDIT_CHECK_SANDBOX_DATA_KEY_FILE,
# CREDIT_CHECK_ADMIN_KEY); the instance never makes keys for a shared database.
ENTRYPOINT ["credit-check"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8600"]
