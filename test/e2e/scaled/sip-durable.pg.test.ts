// The SIP state suite, unchanged, against two instances on PostgreSQL + NATS: the operator lists what either
// instance holds, the other instance refreshes a publication it never saw, and an HTTP change made at either
// instance reaches the owner of a subscription made before the restart.
process.env['MUSTER_E2E_BACKEND'] = 'postgres';
await import('../sip-durable.test.ts');
