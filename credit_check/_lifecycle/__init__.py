"""事中: following a case after its check (DESIGN rule 14, §9.3, §9.6) — watched cases and
grants, re-screening on every sync, lifting measures taken on a wrong entry, and the
信用承诺 ledger of commitments with their working-day due dates."""
