package decode

import "github.com/jackc/pgx/v5/pgtype"

// builtinTypeName names a built-in type by OID, for relations whose catalog entry changed since.
func builtinTypeName(oid uint32) (string, bool) {
	t, ok := pgtype.NewMap().TypeForOID(oid)
	if !ok {
		return "", false
	}
	return t.Name, true
}
