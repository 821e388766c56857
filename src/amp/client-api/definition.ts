/**
 * The client API's gRPC service definition, built from the schema that scripts/gen-proto.js
 * generates from proto/aftersmtp/client/v1/client.proto (no .proto path is resolved at run time).
 * Server and client use the same loader options, so both see the message shapes of messages.ts.
 */
import { loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { fromJSON, type PackageDefinition } from '@grpc/proto-loader';
import { CLIENT_API_SCHEMA } from './schema.generated.js';

export const SERVICE_NAME = 'aftersmtp.client.v1.Gateway';

let cached: PackageDefinition | undefined;

/** The package definition (also what gRPC reflection serves). */
export function clientApiPackage(): PackageDefinition {
  cached ??= fromJSON(structuredClone(CLIENT_API_SCHEMA) as Parameters<typeof fromJSON>[0], {
    keepCase: true,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    arrays: true,
    oneofs: true,
  });
  return cached;
}

/** The generated client constructor of aftersmtp.client.v1.Gateway. */
export function gatewayServiceClient(): ServiceClientConstructor {
  const grpcObject = loadPackageDefinition(clientApiPackage()) as unknown as {
    aftersmtp: { client: { v1: { Gateway: ServiceClientConstructor } } };
  };
  return grpcObject.aftersmtp.client.v1.Gateway;
}

/** The method names of aftersmtp.client.v1.Gateway (e.g. for metrics present from the start). */
export function clientApiMethods(): string[] {
  const service = clientApiPackage()[SERVICE_NAME];
  return service === undefined || 'format' in service ? [] : Object.keys(service);
}
