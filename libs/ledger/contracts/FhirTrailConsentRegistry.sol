// SPDX-License-Identifier: Apache-2.0
// Pinned to the exact compiler that produced artifacts/FhirTrailConsentRegistry.json, so the committed
// bytecode can be reproduced (scripts/build-contracts.ts; a unit spec fails on a stale artifact).
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title FHIR Trail consent registry
/// @notice Mirrors patients' sharing consents, one grant per (patient, recipient) pair, under
/// pseudonymous 32-byte keys: no names, no FHIR ids, no health data. A grant's scope is a bitmap of
/// purposes of use and a bitmap of data classes (FHIR resource types), both numbered off chain, and
/// a validity period. Grants come from the bridge (REGISTRAR_ROLE, mirroring FHIR Consent resources)
/// or are signed by the patient or a delegate (EIP-712) and submitted by a relayer (RELAYER_ROLE).
contract FhirTrailConsentRegistry is AccessControl, Pausable, EIP712 {
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "ConsentGrant(bytes32 patientKey,bytes32 recipientKey,uint256 purposes,uint256 dataClasses,uint64 validFrom,uint64 validUntil,uint256 nonce,uint256 deadline)"
    );
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("ConsentRevoke(bytes32 patientKey,bytes32 recipientKey,uint256 nonce,uint256 deadline)");

    /// @dev validUntil 0 = open-ended. Three storage slots.
    struct Grant {
        uint256 purposes;
        uint256 dataClasses;
        uint64 validFrom;
        uint64 validUntil;
        bool active;
    }

    /// @notice A grant's scope as signed or registered.
    struct GrantScope {
        bytes32 patientKey;
        bytes32 recipientKey;
        uint256 purposes;
        uint256 dataClasses;
        uint64 validFrom;
        uint64 validUntil;
    }

    mapping(bytes32 patientKey => mapping(bytes32 recipientKey => Grant)) private _grants;
    /// @notice The address that signs for a patient (bound by the registrar after it has checked who the patient is).
    mapping(bytes32 patientKey => address) public patientSigner;
    mapping(bytes32 patientKey => mapping(address delegate => bool)) public isDelegate;
    /// @notice Next nonce a signed grant or revocation for this patient must carry.
    mapping(bytes32 patientKey => uint256) public nonces;

    event ConsentGranted(
        bytes32 indexed patientKey,
        bytes32 indexed recipientKey,
        uint256 purposes,
        uint256 dataClasses,
        uint64 validFrom,
        uint64 validUntil,
        address indexed grantedBy
    );
    event ConsentRevoked(bytes32 indexed patientKey, bytes32 indexed recipientKey, address indexed revokedBy);
    event PatientSignerBound(bytes32 indexed patientKey, address indexed signer);
    event DelegateSet(bytes32 indexed patientKey, address indexed delegate, bool allowed);

    /// @notice A zero patient or recipient key.
    error ZeroKey();
    /// @notice A grant with no purpose or no data class.
    error EmptyScope();
    /// @notice validUntil is not after validFrom.
    error InvalidPeriod(uint64 validFrom, uint64 validUntil);
    /// @notice Nothing to revoke for this pair.
    error NoActiveGrant(bytes32 patientKey, bytes32 recipientKey);
    /// @notice The signature's deadline has passed.
    error SignatureExpired(uint256 deadline, uint256 nowTimestamp);
    /// @notice The nonce is not the patient's next one (a replay, or out of order).
    error InvalidNonce(uint256 expected, uint256 given);
    /// @notice The signature is malformed or does not recover to an address.
    error InvalidSignature();
    /// @notice The signature recovers to an address that may not sign for this patient.
    error UnauthorizedSigner(address signer);
    /// @notice The caller may not manage this patient's delegates or grants.
    error NotPatientOrRegistrar(address caller);

    constructor(address admin, address registrar, address relayer) EIP712("FhirTrailConsentRegistry", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, registrar);
        _grantRole(RELAYER_ROLE, relayer);
    }

    // ----- registrar (the bridge mirroring FHIR Consent resources) -----

    /// @notice Record (or replace) the grant of a (patient, recipient) pair.
    function grant(GrantScope calldata scope) external onlyRole(REGISTRAR_ROLE) whenNotPaused {
        _grant(scope, msg.sender);
    }

    /// @notice Revoke the grant of a pair. The patient's signer or a delegate may also call this directly.
    function revoke(bytes32 patientKey, bytes32 recipientKey) external whenNotPaused {
        if (!hasRole(REGISTRAR_ROLE, msg.sender) && !_maySignFor(patientKey, msg.sender)) {
            revert NotPatientOrRegistrar(msg.sender);
        }
        _revoke(patientKey, recipientKey, msg.sender);
    }

    function bindPatientSigner(bytes32 patientKey, address signer) external onlyRole(REGISTRAR_ROLE) {
        if (patientKey == bytes32(0)) revert ZeroKey();
        patientSigner[patientKey] = signer;
        emit PatientSignerBound(patientKey, signer);
    }

    /// @notice Allow or disallow a delegate (e.g. a legal guardian's key) to sign for a patient.
    function setDelegate(bytes32 patientKey, address delegate, bool allowed) external {
        if (!hasRole(REGISTRAR_ROLE, msg.sender) && patientSigner[patientKey] != msg.sender) {
            revert NotPatientOrRegistrar(msg.sender);
        }
        isDelegate[patientKey][delegate] = allowed;
        emit DelegateSet(patientKey, delegate, allowed);
    }

    // ----- signed by the patient or a delegate, submitted by a relayer -----

    function grantWithSignature(
        GrantScope calldata scope,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external onlyRole(RELAYER_ROLE) whenNotPaused {
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                scope.patientKey,
                scope.recipientKey,
                scope.purposes,
                scope.dataClasses,
                scope.validFrom,
                scope.validUntil,
                nonce,
                deadline
            )
        );
        address signer = _checkSignature(scope.patientKey, structHash, nonce, deadline, signature);
        _grant(scope, signer);
    }

    function revokeWithSignature(
        bytes32 patientKey,
        bytes32 recipientKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external onlyRole(RELAYER_ROLE) whenNotPaused {
        bytes32 structHash = keccak256(abi.encode(REVOKE_TYPEHASH, patientKey, recipientKey, nonce, deadline));
        address signer = _checkSignature(patientKey, structHash, nonce, deadline, signature);
        _revoke(patientKey, recipientKey, signer);
    }

    // ----- views -----

    /// @notice True when the pair's grant is active, covers the purpose bit and the data-class bit, and holds at `at` (unix seconds).
    function isConsented(
        bytes32 patientKey,
        bytes32 recipientKey,
        uint8 purpose,
        uint8 dataClass,
        uint64 at
    ) external view returns (bool) {
        Grant storage g = _grants[patientKey][recipientKey];
        return
            g.active &&
            (g.purposes >> purpose) & 1 == 1 &&
            (g.dataClasses >> dataClass) & 1 == 1 &&
            at >= g.validFrom &&
            (g.validUntil == 0 || at < g.validUntil);
    }

    function grantOf(bytes32 patientKey, bytes32 recipientKey) external view returns (Grant memory) {
        return _grants[patientKey][recipientKey];
    }

    /// @notice The EIP-712 domain separator signers must use.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ----- internals -----

    function _grant(GrantScope calldata s, address by) private {
        if (s.patientKey == bytes32(0) || s.recipientKey == bytes32(0)) revert ZeroKey();
        if (s.purposes == 0 || s.dataClasses == 0) revert EmptyScope();
        if (s.validUntil != 0 && s.validUntil <= s.validFrom) revert InvalidPeriod(s.validFrom, s.validUntil);
        _grants[s.patientKey][s.recipientKey] = Grant(s.purposes, s.dataClasses, s.validFrom, s.validUntil, true);
        emit ConsentGranted(s.patientKey, s.recipientKey, s.purposes, s.dataClasses, s.validFrom, s.validUntil, by);
    }

    function _revoke(bytes32 patientKey, bytes32 recipientKey, address by) private {
        Grant storage g = _grants[patientKey][recipientKey];
        if (!g.active) revert NoActiveGrant(patientKey, recipientKey);
        g.active = false;
        emit ConsentRevoked(patientKey, recipientKey, by);
    }

    /// @dev Order of checks: deadline, nonce (so a replay is always InvalidNonce), then the signature.
    function _checkSignature(
        bytes32 patientKey,
        bytes32 structHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) private returns (address) {
        if (block.timestamp > deadline) revert SignatureExpired(deadline, block.timestamp);
        uint256 expected = nonces[patientKey];
        if (nonce != expected) revert InvalidNonce(expected, nonce);
        (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
        if (!_maySignFor(patientKey, signer)) revert UnauthorizedSigner(signer);
        unchecked {
            nonces[patientKey] = expected + 1;
        }
        return signer;
    }

    function _maySignFor(bytes32 patientKey, address who) private view returns (bool) {
        return who != address(0) && (patientSigner[patientKey] == who || isDelegate[patientKey][who]);
    }
}
