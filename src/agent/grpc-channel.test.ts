import { describe, expect, it } from 'vitest';
import { grpcTarget } from './grpc-channel.ts';

describe('the control plane URL', () => {
  it('becomes a grpc-js target', () => {
    expect(grpcTarget('http://127.0.0.1:50051').target).toBe('127.0.0.1:50051');
    expect(grpcTarget('https://cp.example:443/').target).toBe('cp.example:443');
    expect(grpcTarget('cp.example:50051').target).toBe('cp.example:50051');
  });
});
