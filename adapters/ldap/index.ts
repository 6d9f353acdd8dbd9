export { checkLdapAccountName } from "./account-name.js";
export { type LdapTarget, ldapConfig, passwordChangeMethods } from "./config.js";
export {
  ACCOUNT_PLACEHOLDER,
  type AttributeTypeAndValue,
  accountDn,
  canonicalDn,
  checkAccountDnTemplate,
  escapeDnValue,
  type ParsedDn,
  parseDn,
} from "./dn.js";
export { escapeFilterValue } from "./filter.js";
export { ldapAdapter } from "./ldap-adapter.js";
export { passwordModifyRequest, sshaHash, unicodePwdValue } from "./password-change.js";
