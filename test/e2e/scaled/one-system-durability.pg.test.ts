// The one-system suite, unchanged, against two instances on PostgreSQL + NATS behind a round-robin balancer (issue 5).
process.env['MUSTER_E2E_BACKEND'] = 'postgres';
await import('../one-system-durability.test.ts');
