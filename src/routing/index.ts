/** The MappingEngine's public surface (placeholder types; the engine lands with src/routing/engine.ts). */
export type MapName =
  'access_map' | 'relay_domains' | 'mx_record_map' | 'canonical_maps' | 'virtual_alias_maps';
export type AccessAction = 'OK' | 'REJECT' | 'DEFER' | 'DISCARD' | 'HOLD' | 'PREPEND' | 'DUNNO';
export interface AccessMatch {
  readonly action: AccessAction;
  readonly text?: string;
  readonly code?: number;
  readonly key: string;
}
export type Route =
  | { readonly kind: 'amp'; readonly host: string; readonly port: number }
  | {
      readonly kind: 'smtp';
      readonly host: string;
      readonly port: number;
      readonly mxLookup: boolean;
    }
  | { readonly kind: 'error'; readonly text: string };
export type AliasExpansion =
  | { readonly kind: 'none' }
  | { readonly kind: 'expanded'; readonly targets: readonly string[] }
  | { readonly kind: 'limit'; readonly reason: string };
export interface MapSnapshot {
  readonly version: number;
  accessClient(ip: string): AccessMatch | undefined;
  accessSender(address: string): AccessMatch | undefined;
  accessRecipient(address: string): AccessMatch | undefined;
  isRelayDomain(domain: string): boolean;
  route(address: string): Route | undefined;
  canonicalRecipient(address: string): string | undefined;
  canonicalSender(didOrAddress: string): string | undefined;
  expandAlias(address: string): AliasExpansion;
}
