-- Baseline of switchyard's schema. Each capability adds its own migration
-- after this one; migrations are applied by `switchyard migrate` and by
-- `switchyard serve` at start-up.
SELECT 1;
