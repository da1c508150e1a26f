// The mesh policy: which pods are Istio sidecar pods whose traffic meshlane
// redirects, and with what interception config. Pure code: no I/O.
export {
  POD_LIMITS,
  PodInputError,
  containersKnown,
  findContainer,
  parseGoBool,
  podInfoFromAnnotations,
  podInfoFromObject,
  type ContainerInfo,
  type PodInfo,
} from './pod.js';
export {
  INJECT_TEMPLATES_ANNOTATION,
  ISTIO_INIT,
  ISTIO_PROXY,
  ISTIO_VALIDATION,
  SIDECAR_INJECT,
  SIDECAR_STATUS_ANNOTATION,
  decideSidecar,
  parseSidecarStatus,
  type InjectionStatus,
  type SidecarDecision,
} from './sidecar.js';
export {
  DEFAULT_PROXY_GID,
  DEFAULT_PROXY_UID,
  DNS_CAPTURE_ENV,
  PROXY_CONFIG_ANNOTATION,
  PROXY_OVERRIDES_ANNOTATION,
  dnsCapture,
  overridesIdentity,
  proxyIdentity,
  proxyMetadata,
} from './proxy.js';
export {
  ALWAYS_EXCLUDED_INBOUND_PORTS,
  ANNOTATIONS,
  AnnotationError,
  DEFAULT_EXCLUDED_PORT,
  DEFAULT_STATUS_PORT,
  MAX_ANNOTATION_VALUE,
  MAX_ERROR_VALUE,
  interceptionFromAnnotations,
  interceptionMode,
  normalizeCidr,
  parseCidrList,
  parseInterceptionAnnotations,
  parseInterfaceList,
  parsePortList,
  type InterceptionParse,
} from './annotations.js';
