"""Personal data: protection before bronze (pseudonymise, mask, generalise,
drop), the ingest-time PII scan, and erasure of a subject (`lakeforge forget`)."""
